"""Logging: JSON lines, redaction by key and by shape, tracebacks without locals."""

from __future__ import annotations

import io
import json
import logging

import pytest

from service import logs

SENTINEL_TOKEN = "hvs.SENTINELtokenABCDEFGHIJKLMNOP123"


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    logs.configure("debug", "json", stream=out)
    return out


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_context(stream: io.StringIO) -> None:
    """Events are JSON objects with level, time and the bound context."""
    logs.bind(run_id="r1", secret="acme-registry")
    try:
        logs.get_logger("test").info("rotation.applied", target="eu")
    finally:
        logs.unbind("run_id", "secret")
    (line,) = lines(stream)
    assert line["event"] == "rotation.applied"
    assert line["run_id"] == "r1"
    assert line["secret"] == "acme-registry"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_redacts_by_key_and_by_shape(stream: io.StringIO) -> None:
    """Sensitive keys are masked; tokens, JWTs and dockerconfigjson inside text are masked too."""
    log = logs.get_logger("test")
    log.info("x", password="hunter2", detail=f"token {SENTINEL_TOKEN}", body='{"auths":{"r":{"password":"p"}}}')
    log.info("y", header="Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig")
    text = stream.getvalue()
    for secret in ("hunter2", SENTINEL_TOKEN, '"password":"p"', "eyJzdWIiOiIxIn0"):
        assert secret not in text
    assert text.count(logs.MASK) >= 4


def test_library_loggers_share_the_pipeline(stream: io.StringIO) -> None:
    """A standard-library logger's record is rendered as JSON and redacted."""
    logging.getLogger("hvac.test").warning("request failed with token %s", SENTINEL_TOKEN)
    (line,) = lines(stream)
    assert line["logger"] == "hvac.test"
    assert SENTINEL_TOKEN not in json.dumps(line)


def test_traceback_has_no_locals(stream: io.StringIO) -> None:
    """An exception is logged with its traceback but without frame locals."""

    def fails(token: str) -> None:
        local_copy = token  # noqa: F841 (a local that a locals-dumping renderer would print)
        raise RuntimeError("boom")

    value = "-".join(["plain", "sentinel", "value"])  # built at run time: absent from the source lines
    try:
        fails(value)
    except RuntimeError:
        logs.get_logger("test").exception("failed")
    (line,) = lines(stream)
    assert "RuntimeError: boom" in str(line["exception"])
    assert "plain-sentinel-value" not in stream.getvalue()
