"""`rotator check` without --offline reaches Vault, the database and every tenant, for real."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import hvac
import pytest
import sqlalchemy as sa

from service.audit.migrate import upgrade
from service.cli import main
from service.sandbox.aicore_emulator import AICoreEmulator
from tests.harness import VaultServer


def write_config(
    tmp_path: Path, *, vault: VaultServer, database_url: str, emulator: AICoreEmulator, path: str = "registries/acme"
) -> Path:
    key = tmp_path / "tenant.json"
    key.write_text(json.dumps(emulator.add_tenant("tenant-a")))
    key.chmod(0o600)
    config = tmp_path / "rotator.toml"
    config.write_text(f"""
[vault]
address = "{vault.address}"
auth = {{method = "token", token = {{env = "CHECK_VAULT_TOKEN"}}}}

[database]
url = "{database_url}"

[audit]
key = {{env = "CHECK_AUDIT_KEY"}}

[targets.tenant-a]
service_key = {{file = "{key}"}}

[[secrets]]
name = "acme-registry"
targets = ["tenant-a"]
registries = ["registry.acme.example"]
source = {{path = "{path}"}}
schedule = {{every = "1h"}}
""")
    return config


def put_source(vault: VaultServer, password: str) -> str:
    """A readable KV v2 source at a path of this test's own; its path."""
    path = f"check/{uuid.uuid4().hex[:10]}"
    client = hvac.Client(url=vault.address, token=vault.token)
    client.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": "robot", "password": password}, mount_point="secret"
    )
    client.adapter.close()
    return path


@pytest.fixture
def env(vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECK_VAULT_TOKEN", vault_server.token)
    monkeypatch.setenv("CHECK_AUDIT_KEY", "k" * 32)


@pytest.mark.usefixtures("env")
def test_everything_reachable(
    tmp_path: Path, vault_server: VaultServer, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With every server up and the schema at head, check prints ok for each and exits 0."""
    engine = sa.create_engine(database_url)
    upgrade(engine)
    engine.dispose()
    source = put_source(vault_server, "SENTINEL-check-password")
    with AICoreEmulator() as emulator:
        path = write_config(tmp_path, vault=vault_server, database_url=database_url, emulator=emulator, path=source)
        assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ok   vault: ok" in out
    assert "ok   database: ok" in out
    assert "ok   aicore tenant-a: ok" in out
    assert f"ok   source kv2:secret/{source} (acme-registry): ok" in out
    assert "SENTINEL-check-password" not in out


@pytest.mark.usefixtures("env")
def test_an_unreadable_source_is_reported_and_exits_2(
    tmp_path: Path, vault_server: VaultServer, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Everything reachable, but the source's path holds nothing: one FAIL line naming it, exit 2."""
    engine = sa.create_engine(database_url)
    upgrade(engine)
    engine.dispose()
    with AICoreEmulator() as emulator:
        path = write_config(
            tmp_path, vault=vault_server, database_url=database_url, emulator=emulator, path="check/nowhere"
        )
        assert main(["check", "-c", str(path)]) == 2
    out = capsys.readouterr().out
    assert "ok   aicore tenant-a: ok" in out
    [line] = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert line.startswith("FAIL source kv2:secret/check/nowhere (acme-registry): source_not_found")


@pytest.mark.usefixtures("env")
def test_unreachable_tenant_and_old_schema(
    tmp_path: Path, vault_server: VaultServer, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stopped AI Core and an unmigrated database are each one FAIL line; exit code 3."""
    emulator = AICoreEmulator()
    emulator.start()
    path = write_config(tmp_path, vault=vault_server, database_url=database_url, emulator=emulator)
    emulator.stop()
    assert main(["check", "-c", str(path)]) == 3
    out = capsys.readouterr().out
    assert "ok   vault: ok" in out
    assert "FAIL database: schema_not_current" in out
    assert "rotator db upgrade" in out
    assert "FAIL aicore tenant-a: aicore_unavailable" in out
