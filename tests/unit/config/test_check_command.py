"""`rotator check --offline`: validation of references, a summary, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main

REPO = Path(__file__).resolve().parents[3]

SERVICE_KEY = {
    "clientid": "sb-client",
    "clientsecret": "sentinel-client-secret",
    "url": "https://tenant.authentication.example.com",
    "identityzone": "tenant",
    "serviceurls": {"AI_API_URL": "https://api.ai.example.com"},
}


def config_with_key(tmp_path: Path, key_text: str, *, mode: int = 0o600) -> Path:
    key = tmp_path / "eu.json"
    key.write_text(key_text)
    key.chmod(mode)
    path = tmp_path / "rotator.toml"
    path.write_text(f"""
[vault.auth]
method = "token"
token = {{env = "TEST_VAULT_TOKEN"}}

[audit]
key = {{env = "TEST_AUDIT_KEY"}}

[targets.eu]
service_key = {{file = "{key}"}}

[[secrets]]
name = "acme-registry"
targets = ["eu"]
registries = ["registry.acme.example"]
source = {{path = "registries/acme"}}
schedule = {{cron = "0 */6 * * *"}}
""")
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VAULT_TOKEN", "x")
    monkeypatch.setenv("TEST_AUDIT_KEY", "y")
    monkeypatch.delenv("ROTATOR_CONFIG", raising=False)


@pytest.mark.usefixtures("env")
def test_valid_config_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid config exits 0 and lists targets, secrets, schedules and the next run."""
    path = config_with_key(tmp_path, json.dumps(SERVICE_KEY))
    assert main(["check", "--offline", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 target(s), 1 secret(s)" in out
    assert "secret acme-registry: kv2:secret/registries/acme -> eu; cron '0 */6 * * *' UTC; next run 20" in out


@pytest.mark.usefixtures("env")
def test_config_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ROTATOR_CONFIG names the file when --config is absent."""
    monkeypatch.setenv("ROTATOR_CONFIG", str(config_with_key(tmp_path, json.dumps(SERVICE_KEY))))
    assert main(["check", "--offline"]) == 0
    assert "acme-registry" in capsys.readouterr().out


@pytest.mark.usefixtures("env")
def test_unreadable_service_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A service key that is not JSON, or lacks a field, exits 2 naming the key path and field."""
    path = config_with_key(tmp_path, "{not json")
    assert main(["check", "--offline", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: targets.eu.service_key: {tmp_path / 'eu.json'}: service key is not valid JSON" in err

    broken = dict(SERVICE_KEY, serviceurls={})
    path = config_with_key(tmp_path, json.dumps(broken))
    assert main(["check", "--offline", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "service key field serviceurls.AI_API_URL is missing or empty" in err
    assert "sentinel-client-secret" not in err


@pytest.mark.usefixtures("env")
def test_missing_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unset variable and a missing file are both reported, with exit code 2."""
    path = config_with_key(tmp_path, json.dumps(SERVICE_KEY))
    (tmp_path / "eu.json").unlink()
    monkeypatch.delenv("TEST_AUDIT_KEY")
    assert main(["check", "--offline", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "audit.key: environment variable TEST_AUDIT_KEY is not set" in err
    assert f"targets.eu.service_key: file {tmp_path / 'eu.json'} does not exist" in err


@pytest.mark.usefixtures("env")
def test_world_readable_secret_file_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A secret file others can read is a warning naming the key path and file, not an error."""
    path = config_with_key(tmp_path, json.dumps(SERVICE_KEY), mode=0o644)
    assert main(["check", "--offline", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: targets.eu.service_key: file {tmp_path / 'eu.json'} holds a secret" in err
    assert "readable by everyone (chmod o-r)" in err


def test_invalid_config_exits_2_without_traceback(tmp_path: Path) -> None:
    """As a process: exit code 2, every problem on stderr, no Python traceback."""
    path = tmp_path / "bad.toml"
    path.write_text('[vault]\naddress = "ftp://x"\nbogus = 1\n')
    result = subprocess.run(
        [sys.executable, "-m", "service", "check", "--offline", "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: {path}: vault.address: not an http(s) URL: 'ftp://x'" in result.stderr
    assert f"error: {path}: vault.bogus: unknown key" in result.stderr


def test_help_imports_no_heavy_library() -> None:
    """`rotator --help` builds its parser without importing hvac, httpx, SQLAlchemy, APScheduler or pydantic."""
    code = (
        "import sys, service.cli as c; c.build_parser().format_help();"
        "heavy = [m for m in ('hvac','httpx','sqlalchemy','apscheduler','pydantic','structlog') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""
