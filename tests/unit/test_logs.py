"""Logging: JSON lines, redaction by key and by shape, tracebacks without locals."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

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


class _SlowStream(io.StringIO):
    """A stream whose writes take a while and count themselves: other threads' lines pile up meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        time.sleep(0.002)
        return super().write(text)


def test_lines_from_many_threads_stay_whole_in_order_and_none_is_lost() -> None:
    """Our lines and a library's, from 16 threads at once: every line whole, each thread's in its order."""
    out = _SlowStream()
    logs.configure("info", "json", stream=out)
    log = logs.get_logger("test")
    per_thread = 200

    def emit(thread: int) -> None:
        for n in range(per_thread):
            if n % 10 == 0:
                logging.getLogger("hvac.test").warning("library line %d %d", thread, n)
            else:
                log.info("line", thread=thread, n=n)

    threads = [threading.Thread(target=emit, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logs.wait_written()
    parsed = lines(out)  # json.loads fails on a torn or interleaved line
    assert len(parsed) == 16 * per_thread
    ours = [(line["thread"], line["n"]) for line in parsed if line["event"] == "line"]
    for t in range(16):
        assert [n for thread, n in ours if thread == t] == [n for n in range(per_thread) if n % 10]
    assert out.writes < len(parsed)  # lines handed in while another thread wrote went out together


def test_a_stream_that_cannot_keep_up_holds_the_threads_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """No more than MAX_PENDING_LINES wait for the stream: the rest of the threads wait, as on a lock."""
    monkeypatch.setattr(logs, "MAX_PENDING_LINES", 5)
    out = _SlowStream()
    batches: list[int] = []
    write = out.write

    def counting(text: str) -> int:
        batches.append(text.count("\n"))
        return write(text)

    out.write = counting  # type: ignore[method-assign]
    logs.configure("info", "json", stream=out)
    log = logs.get_logger("test")
    threads = [threading.Thread(target=lambda: [log.info("line") for _ in range(20)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logs.wait_written()
    assert sum(batches) == 8 * 20
    assert max(batches) <= 5  # the first batch is the writer's own line; each later one what was pending


def test_a_line_logged_while_its_thread_writes_is_written_by_that_thread() -> None:
    """A signal handler's line, logged while its thread writes (holds the writer), is not lost or deadlocked."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    log = logs.get_logger("test")
    write = out.write
    reentered: list[int] = []

    def write_once_reentering(text: str) -> int:
        if not reentered:
            reentered.append(1)
            log.info("from.handler")  # what a SIGTERM handler's line does in the middle of a write
        return write(text)

    out.write = write_once_reentering  # type: ignore[method-assign]
    log.info("first")
    assert [line["event"] for line in lines(out)] == ["first", "from.handler"]
    assert logs.wait_written()


def test_a_failing_stream_never_fails_the_caller_and_the_next_line_is_written() -> None:
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    log = logs.get_logger("test")
    write = out.write
    failures = [OSError("disk full")]

    def fail_once(text: str) -> int:
        if failures:
            raise failures.pop()
        return write(text)

    out.write = fail_once  # type: ignore[method-assign]
    log.info("lost")
    log.info("kept")
    assert [line["event"] for line in lines(out)] == ["kept"]
