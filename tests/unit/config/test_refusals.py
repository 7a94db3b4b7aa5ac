"""Config that can never work is refused up front, naming the secret by its key path."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic_settings import SettingsError

from service.cli import main
from service.config import env_override_issues, load_settings
from service.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)

HEAD = """
[vault.auth]
method = "token"
token = {env = "TEST_VAULT_TOKEN"}

[audit]
key = {env = "TEST_AUDIT_KEY"}

[targets.eu]
service_key = {env = "TEST_SERVICE_KEY"}
"""


def entry(name: str, *, schedule: str | None = '{every = "6h"}', registries: str = '["registry.acme.example"]') -> str:
    lines = ["[[secrets]]", f'name = "{name}"', 'targets = ["eu"]', f'source = {{path = "registries/{name}"}}']
    if registries:
        lines.append(f"registries = {registries}")
    if schedule:
        lines.append(f"schedule = {schedule}")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, *entries: str, defaults: str = "") -> Path:
    path = tmp_path / "rotator.toml"
    path.write_text(HEAD + "".join(entries) + (f"\n[defaults.schedule]\n{defaults}\n" if defaults else ""))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, now=NOW)
    return str(caught.value).splitlines()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEST_VAULT_TOKEN", "TEST_AUDIT_KEY", "TEST_SERVICE_KEY"):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("ROTATOR_CONFIG", raising=False)


def test_a_cron_that_never_runs_is_refused_naming_the_secret(tmp_path: Path) -> None:
    """30 February: a config error at secrets[1] (reg-001).schedule, whatever command loads it."""
    path = write(tmp_path, entry("reg-000"), entry("reg-001", schedule='{cron = "0 0 30 2 *"}'))
    assert problems(path) == [
        f"{path}: secrets[1] (reg-001).schedule: cron '0 0 30 2 *' UTC never runs: no date matches it"
    ]


def test_a_schedule_more_than_a_year_away_is_refused(tmp_path: Path) -> None:
    """A leap-day cron, read in its time zone, next runs in 2028: refused."""
    path = write(tmp_path, entry("reg-000", schedule='{cron = "0 0 29 2 *", timezone = "Europe/Berlin"}'))
    assert problems(path) == [
        f"{path}: secrets[0] (reg-000).schedule: cron '0 0 29 2 *' Europe/Berlin "
        "next run 2028-02-28T23:00Z is more than a year away"
    ]


def test_a_default_schedule_that_never_runs_is_refused_naming_the_secrets_that_use_it(tmp_path: Path) -> None:
    """[defaults.schedule] is judged for the secrets that use it, and names them (a few, then a count)."""
    names = [f"reg-00{i}" for i in range(5)]
    entries = [entry(name, schedule=None) for name in names[:4]] + [entry(names[4])]
    path = write(tmp_path, *entries, defaults='cron = "0 0 31 4 *"')
    assert problems(path) == [
        f"{path}: defaults.schedule: cron '0 0 31 4 *' UTC never runs: no date matches it "
        "(used by secrets[0] (reg-000), secrets[1] (reg-001), secrets[2] (reg-002) and 1 more)"
    ]


def test_an_unused_default_schedule_is_not_judged(tmp_path: Path) -> None:
    """No secret uses [defaults.schedule]: it cannot stop a rotation, so it loads."""
    settings = load_settings(write(tmp_path, entry("reg-000"), defaults='cron = "0 0 30 2 *"'), environ={}, now=NOW)
    assert [secret.name for secret in settings.secrets] == ["reg-000"]


@pytest.mark.parametrize("registries", ["[]", ""])
def test_no_registry_host_and_no_registry_field_is_refused(tmp_path: Path, registries: str) -> None:
    """registries = [] (or absent) without source.registry_field can never render: refused at load."""
    path = write(tmp_path, entry("reg-000", registries=registries))
    [line] = problems(path)
    assert line.startswith(f"{path}: secrets[0] (reg-000).registries: no registry host: ")
    assert "source.registry_field" in line


def test_a_registry_field_stands_in_for_registries(tmp_path: Path) -> None:
    """A source that names its registry host in a field needs no registries list."""
    path = tmp_path / "rotator.toml"
    text = entry("reg-000", registries="").replace(
        '{path = "registries/reg-000"}', '{path = "p", registry_field = "host"}'
    )
    path.write_text(HEAD + text)
    assert load_settings(path, environ={}, now=NOW).secrets[0].source.registry_field == "host"


@pytest.mark.usefixtures("env")
def test_check_offline_refuses_a_schedule_that_never_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rotator check --offline` exits 2 with the key path, and prints no summary."""
    path = write(tmp_path, entry("reg-000", schedule='{cron = "0 0 30 2 *"}'))
    assert main(["check", "--offline", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err
        == f"error: {path}: secrets[0] (reg-000).schedule: cron '0 0 30 2 *' UTC never runs: no date matches it\n"
    )
    assert captured.out == ""


@pytest.mark.usefixtures("env")
def test_check_warns_of_an_interval_under_a_minute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """every = "30s" loads and checks fine, with a warning that each run reads Vault."""
    path = write(
        tmp_path,
        entry("reg-000", schedule='{every = "30s"}'),
        entry("reg-001", schedule=None),
        defaults='every = "10s"',
    )
    assert main(["check", "--offline", "-c", str(path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: {path}: secrets[0] (reg-000).schedule: every 30s is under one minute: every run reads Vault",
        f"warning: {path}: defaults.schedule: every 10s is under one minute: every run reads Vault "
        "(used by secrets[1] (reg-001))",
    ]


@pytest.mark.usefixtures("env")
def test_a_minute_is_not_warned_of(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """every = "1m" is at the bound: no warning."""
    path = write(tmp_path, entry("reg-000", schedule='{every = "1m"}'))
    assert main(["check", "--offline", "-c", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_bad_json_in_an_environment_override_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROTATOR_TARGETS='{not json': one config error naming the variable, never its value."""
    monkeypatch.setenv("ROTATOR_TARGETS", "{not json SENTINEL-value")
    path = write(tmp_path, entry("reg-000"))
    [line] = problems_with_env(path)
    assert line.startswith(f"{path}: targets: ROTATOR_TARGETS is not valid JSON (Expecting property name")
    assert "SENTINEL" not in line


def test_bad_json_in_a_nested_override_names_that_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nested table override names its own variable, not a scalar beside it."""
    monkeypatch.setenv("ROTATOR_ROTATION__RETRY", "{attempts: 3}")
    monkeypatch.setenv("ROTATOR_ROTATION__MAX_CONCURRENCY", "8")
    [line] = problems_with_env(write(tmp_path, entry("reg-000")))
    assert ": rotation.retry: ROTATOR_ROTATION__RETRY is not valid JSON (" in line


def problems_with_env(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, now=NOW)
    return str(caught.value).splitlines()


def test_bad_json_override_as_a_process_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """As a process: exit 2, one line naming ROTATOR_TARGETS, no traceback."""
    path = write(tmp_path, entry("reg-000"))
    result = subprocess.run(
        [sys.executable, "-m", "service", "check", "--offline", "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "ROTATOR_TARGETS": "{not json"},
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: targets: ROTATOR_TARGETS is not valid JSON (")


def test_an_override_error_without_a_culprit_in_sight_names_the_field_and_its_variables() -> None:
    """When no variable in view holds broken JSON, the line still names the field and where it is set."""
    error = SettingsError('error parsing value for field "targets" from source "EnvSettingsSource"')
    [issue] = env_override_issues(error, {"ROTATOR_TARGETS": '{"eu": {}}', "ROTATOR_VAULT__ADDRESS": "{x"})
    assert (issue.location, issue.problem) == (
        "targets",
        "cannot read the value set by ROTATOR_TARGETS or ROTATOR_TARGETS__*: not valid JSON",
    )


@pytest.mark.parametrize("command", [["run"], ["once", "--dry-run"], ["status"]])
def test_every_command_refuses_a_schedule_that_never_runs(tmp_path: Path, command: list[str]) -> None:
    """As a process, `run`, `once` and `status` refuse 30 February before reaching any server: exit 2, one line."""
    path = write(tmp_path, entry("reg-000", schedule='{cron = "0 0 30 2 *"}'))
    result = subprocess.run(
        [sys.executable, "-m", "service", *command, "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "TEST_VAULT_TOKEN": "x", "TEST_AUDIT_KEY": "y"},
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: {path}: secrets[0] (reg-000).schedule: cron '0 0 30 2 *' UTC never runs: no date matches it"
    ]
