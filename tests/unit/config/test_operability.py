"""Operability of the settings: [log] honoured, unknown ROTATOR_ variables warned, a structure-only check."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import pytest

from service import cli, logs
from service.cli import main
from service.config import load_settings, unknown_env_issues
from service.model import format_duration, parse_duration

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "rotator.example.toml"


def log_config(tmp_path: Path, *, level: str, fmt: str = "json") -> Path:
    path = tmp_path / "rotator.toml"
    path.write_text(f'[log]\nlevel = "{level}"\nformat = "{fmt}"\n')
    return path


def emit_probes() -> None:
    log = logs.get_logger("test")
    log.info("probe.info")
    log.warning("probe.warning")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROTATOR_CONFIG", "ROTATOR_LOG__LEVEL", "ROTATOR_LOG__FORMAT"):
        monkeypatch.delenv(name, raising=False)


def test_log_section_sets_level_and_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`[log] level = "warning"` drops info lines, and `format = "json"` writes JSON objects."""
    cli.load(argparse.Namespace(config=str(log_config(tmp_path, level="warning"))))
    emit_probes()
    err = capsys.readouterr().err
    events = [json.loads(line)["event"] for line in err.splitlines()]
    assert events == ["probe.warning"]


def test_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ROTATOR_LOG__LEVEL wins over the file's [log] level."""
    monkeypatch.setenv("ROTATOR_LOG__LEVEL", "error")
    cli.load(argparse.Namespace(config=str(log_config(tmp_path, level="info"))))
    emit_probes()
    assert capsys.readouterr().err == ""


def test_flag_overrides_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--log-level and --log-format win over ROTATOR_LOG__* and the file."""
    monkeypatch.setenv("ROTATOR_LOG__LEVEL", "error")
    monkeypatch.setenv("ROTATOR_LOG__FORMAT", "console")
    path = log_config(tmp_path, level="error")
    cli.load(argparse.Namespace(config=str(path), log_level="info", log_format="json"))
    emit_probes()
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ["probe.info", "probe.warning"]


def test_unknown_sections_are_named() -> None:
    """A misspelt section and a single-underscore variable each get a warning naming the variable."""
    environ = {"ROTATOR_VAUTL__ADDRESS": "http://x", "ROTATOR_VAULT_ADDRESS": "http://x", "ROTATOR_VAULT__ADDRESS": "x"}
    issues = {issue.location: issue for issue in unknown_env_issues(None, environ=environ)}
    assert set(issues) == {"ROTATOR_VAUTL__ADDRESS", "ROTATOR_VAULT_ADDRESS"}
    assert all(issue.severity == "warning" for issue in issues.values())
    assert "did you mean ROTATOR_VAULT__ADDRESS?" in issues["ROTATOR_VAULT_ADDRESS"].problem


def test_project_variables_and_references_are_not_warned(tmp_path: Path) -> None:
    """ROTATOR_CONFIG, ROTATOR_AUDIT_KEY, ROTATOR_OPERATOR and variables the config references are no typo."""
    path = tmp_path / "rotator.toml"
    path.write_text('[database]\npassword = {env = "ROTATOR_PG_SECRET"}\n')
    settings = load_settings(path, environ={})
    environ = dict.fromkeys(("ROTATOR_CONFIG", "ROTATOR_AUDIT_KEY", "ROTATOR_OPERATOR", "ROTATOR_PG_SECRET"), "x")
    environ["ROTATOR_TEST_DATABASE_URL"] = "x"
    assert unknown_env_issues(settings, environ=environ) == []
    assert [i.location for i in unknown_env_issues(None, environ=environ)] == ["ROTATOR_PG_SECRET"]


def test_check_prints_the_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rotator check` lists an unknown variable as a warning and still exits 0."""
    monkeypatch.setenv("ROTATOR_VAULT_ADDRESS", "http://vault:8200")
    assert main(["check", "--offline", "--structure-only", "-c", str(EXAMPLE)]) == 0
    err = capsys.readouterr().err
    assert (
        "warning: environment: ROTATOR_VAULT_ADDRESS: ignored: the settings have no section 'vault_address' "
        "(did you mean ROTATOR_VAULT__ADDRESS?)"
    ) in err


def test_example_config_passes_structure_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped example config passes `check --offline --structure-only` with nothing mounted."""
    monkeypatch.delenv("ROTATOR_DB_PASSWORD", raising=False)
    assert main(["check", "--offline", "--structure-only", "-c", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "2 target(s), 2 secret(s)" in out


def test_example_config_without_structure_only_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --structure-only the same config fails, naming the unmounted file and unset variable."""
    monkeypatch.delenv("ROTATOR_DB_PASSWORD", raising=False)
    assert main(["check", "--offline", "-c", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "database.password: environment variable ROTATOR_DB_PASSWORD is not set" in err


@pytest.mark.parametrize(
    ("text", "shown"),
    [("4s", "4s"), ("6h", "6h"), ("1h30m", "1h30m"), ("500ms", "500ms"), ("2d", "2d"), ("90s", "1m30s"), (0, "0s")],
)
def test_durations_print_as_written(text: str | int, shown: str) -> None:
    """Durations print in the config's own units, never as 0:00:04."""
    value = parse_duration(text)
    assert format_duration(value if isinstance(value, timedelta) else timedelta(seconds=value)) == shown


def test_other_commands_log_the_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Commands that load the config (run, once, status...) log one warning event naming the variable."""
    monkeypatch.setenv("ROTATOR_VAUTL__ADDRESS", "http://vault:8200")
    cli.load(argparse.Namespace(config=str(log_config(tmp_path, level="info"))))
    (line,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert line["event"] == "config.unknown_variable"
    assert line["level"] == "warning"
    assert line["variable"] == "ROTATOR_VAUTL__ADDRESS"
