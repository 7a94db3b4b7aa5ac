"""`rotator check` online: a service key read from Vault is held to the cleartext rule too."""

from __future__ import annotations

import json
from pathlib import Path

import hvac
import pytest
import sqlalchemy as sa

from service.audit.migrate import upgrade
from service.cli import main
from tests.harness import VaultServer


def test_a_vault_held_service_key_over_http_is_a_config_error(
    tmp_path: Path,
    vault_server: VaultServer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The key is only readable from Vault: check fetches it, names targets.eu.service_key and exits 2."""
    engine = sa.create_engine(database_url)
    upgrade(engine)
    engine.dispose()
    key = {
        "clientid": "sb-client",
        "clientsecret": "sentinel-client-secret",
        "url": "http://auth.example.com",
        "serviceurls": {"AI_API_URL": "https://api.ai.example.com"},
    }
    root = hvac.Client(url=vault_server.address, token=vault_server.token)
    path = f"check-transport/{tmp_path.name}"
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"key": json.dumps(key)}, mount_point="secret")
    root.adapter.close()
    monkeypatch.setenv("CHECK_VAULT_TOKEN", vault_server.token)
    monkeypatch.setenv("CHECK_AUDIT_KEY", "k" * 32)
    config = tmp_path / "rotator.toml"
    config.write_text(f"""
[vault]
address = "{vault_server.address}"
auth = {{method = "token", token = {{env = "CHECK_VAULT_TOKEN"}}}}

[database]
url = "{database_url}"

[audit]
key = {{env = "CHECK_AUDIT_KEY"}}

[targets.eu]
service_key = {{vault = {{mount = "secret", path = "{path}", field = "key"}}}}

[[secrets]]
name = "acme-registry"
targets = ["eu"]
registries = ["registry.acme.example"]
source = {{path = "registries/acme"}}
schedule = {{every = "1h"}}
""")
    assert main(["check", "-c", str(config)]) == 2
    out = capsys.readouterr().out
    assert (
        "FAIL aicore eu: config_invalid: configuration: targets.eu.service_key: service key field url: http://" in out
    )
    assert "sentinel-client-secret" not in out
