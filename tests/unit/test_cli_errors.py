"""No tracebacks at the command line: one line and the right exit code, a traceback only at debug level."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service import cli

REPO = Path(__file__).resolve().parents[2]
SENTINEL = "SENTINEL-local-value-5d1e"

CONFIG = """
[vault.auth]
method = "token"
token = {env = "TEST_VAULT_TOKEN"}

[audit]
key = {env = "TEST_AUDIT_KEY"}
"""


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VAULT_TOKEN", "x")
    monkeypatch.setenv("TEST_AUDIT_KEY", "y")
    monkeypatch.delenv("ROTATOR_CONFIG", raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rotator.toml"
    path.write_text(CONFIG)
    return path


def buggy_status(args: argparse.Namespace) -> int:
    token = SENTINEL  # a local that must never reach the output
    raise KeyError(len(token))


def records(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def plain(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip() and not line.startswith("{")]


def test_an_unexpected_exception_is_one_line_and_a_log_record_exit_1(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in a command: exit 1, one plain line naming the command and error class, one log record, no traceback."""
    monkeypatch.setattr(cli, "cmd_status", buggy_status)
    assert cli.main(["status", "-c", str(config), "--log-format", "json"]) == 1
    err = capsys.readouterr().err
    assert plain(err) == ["error: internal error in 'status': KeyError; run with --log-level debug for the traceback"]
    [record] = records(err)
    assert (record["event"], record["command"], record["error"], record["level"]) == (
        "cli.internal_error",
        "status",
        "KeyError",
        "error",
    )
    assert "exception" not in record
    assert "Traceback" not in err
    assert SENTINEL not in err


def test_at_debug_level_the_log_record_carries_the_traceback_without_locals(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--log-level debug: the same one line, and the record holds the traceback; frame locals stay out."""
    monkeypatch.setattr(cli, "cmd_status", buggy_status)
    assert cli.main(["status", "-c", str(config), "--log-level", "debug", "--log-format", "json"]) == 1
    err = capsys.readouterr().err
    assert plain(err) == ["error: internal error in 'status': KeyError"]
    [record] = [r for r in records(err) if r["event"] == "cli.internal_error"]
    exception = str(record["exception"])
    assert exception.startswith("Traceback (most recent call last):")
    assert "in buggy_status" in exception
    assert exception.rstrip().endswith(f"KeyError: {len(SENTINEL)}")
    assert SENTINEL not in err


def test_status_without_secrets_is_a_config_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rotator status` with no [[secrets]]: exit 2 and one line naming the file, before any database is asked."""
    assert cli.main(["status", "-c", str(config)]) == 2
    captured = capsys.readouterr()
    [line] = plain(captured.err)
    assert line == f"error: {config}: secrets: no secrets configured: add a [[secrets]] entry " + (
        "(status shows each target and secret)"
    )
    assert captured.out == ""


def test_audit_export_into_a_missing_folder_names_the_path(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`audit export -o` into a folder that does not exist: exit 2, one line naming the folder; no file made."""
    target = tmp_path / "missing" / "trail.jsonl"
    assert cli.main(["audit", "export", "-c", str(config), "-o", str(target)]) == 2
    assert plain(capsys.readouterr().err) == [f"error: cannot write the export to {target}: No such file or directory"]
    assert not (tmp_path / "missing").exists()


def test_audit_export_onto_a_folder_names_the_path(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`audit export -o` naming a directory: exit 2, one line saying why the file cannot be written."""
    assert cli.main(["audit", "export", "-c", str(config), "-o", str(tmp_path)]) == 2
    assert plain(capsys.readouterr().err) == [f"error: cannot write the export to {tmp_path}: Is a directory"]


def test_as_processes_status_and_export_refusals_show_no_traceback(config: Path, tmp_path: Path) -> None:
    """As processes: both refusals exit 2 with one plain line and no Python traceback."""
    for args in (["status"], ["audit", "export", "-o", str(tmp_path / "missing" / "x.csv")]):
        result = subprocess.run(
            [sys.executable, "-m", "service", *args, "-c", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(plain(result.stderr)) == 1, result.stderr
