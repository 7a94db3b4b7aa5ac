"""The compose stack's `seed` step against a real Vault-compatible server: what it writes, and for whom."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import hvac
import hvac.exceptions
import pytest

from service.app import App
from service.config import Settings, load_settings
from service.errors import VaultAuthError
from tests.deploy_files import COMPOSE_CONFIG, environment, load_compose
from tests.harness import VaultServer
from tests.integration.deploy.conftest import SeedRun

Seed = Callable[[dict[str, str]], SeedRun]


@pytest.fixture
def app_token() -> str:
    """A token id of the rotator's, unique to the test (tokens live as long as the session's server)."""
    return f"rotator-test-{secrets.token_hex(8)}"


@pytest.fixture
def seeded(vault_server: VaultServer, run_seed: Seed, app_token: str) -> SeedRun:
    """The seed script, run once with the root token, creating `app_token` for the rotator."""
    run = run_seed(_seed_env(vault_server, app_token))
    assert run.returncode == 0, run.output
    return run


def _seed_env(server: VaultServer, app_token: str) -> dict[str, str]:
    return {"VAULT_ADDR": server.address, "VAULT_TOKEN": server.token, "ROTATOR_VAULT_TOKEN": app_token}


def compose_settings(server: VaultServer, app_token: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """config/compose.toml with the rotator container's environment, the Vault address pointed at the test server."""
    rotator = environment(load_compose({"ROTATOR_VAULT_TOKEN": app_token})["services"]["rotator"])
    for name, value in rotator.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROTATOR_VAULT__ADDRESS", server.address)
    return load_settings(COMPOSE_CONFIG)


def test_seed_writes_what_the_compose_config_reads(
    vault_server: VaultServer, seeded: SeedRun, app_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the seeded token, the rotator reads the audit key and every secret's registry credential."""
    settings = compose_settings(vault_server, app_token, monkeypatch)
    with App(settings) as app:
        assert len(app.audit_key) >= 32
        for secret in settings.secrets:
            credential = app.vault_source.read(secret.source)
            assert credential.username == "demo-robot"
            assert len(credential.password) == 64


def test_rotator_token_reads_two_paths_and_nothing_else(
    vault_server: VaultServer, seeded: SeedRun, app_token: str
) -> None:
    """The rotator's token is periodic and renewable, carries policy `rotator`, and cannot write or read elsewhere."""
    client = hvac.Client(url=vault_server.address, token=app_token)
    data = client.auth.token.lookup_self()["data"]
    assert set(data["policies"]) == {"default", "rotator"}
    assert data["renewable"] is True
    assert data["period"]
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.create_or_update_secret(
            path="registries/demo", secret={"password": "x"}, mount_point="secret"
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(
            path="elsewhere/x", mount_point="secret", raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.create(policies=["rotator"])


def test_running_seed_again_rotates_the_registry_token_and_keeps_the_audit_key(
    vault_server: VaultServer, seeded: SeedRun, run_seed: Seed, app_token: str
) -> None:
    """A second run writes a new registry password (a rotation to come), the same audit key and the same token."""
    root = hvac.Client(url=vault_server.address, token=vault_server.token)
    before = _read(root, "registries/demo"), _read(root, "rotator/audit")
    accessor = root.auth.token.lookup(app_token)["data"]["accessor"]
    again = run_seed(_seed_env(vault_server, app_token))
    assert again.returncode == 0, again.output
    after = _read(root, "registries/demo"), _read(root, "rotator/audit")
    assert after[0]["password"] != before[0]["password"]
    assert after[0]["username"] == before[0]["username"]
    assert after[1] == before[1]
    assert root.auth.token.lookup(app_token)["data"]["accessor"] == accessor


def test_seed_passes_no_value_on_a_command_line(vault_server: VaultServer, seeded: SeedRun) -> None:
    """Generated values reach the CLI on standard input, so no process listing or shell history shows them."""
    root = hvac.Client(url=vault_server.address, token=vault_server.token)
    values = [_read(root, "registries/demo")["password"], _read(root, "rotator/audit")["hmac_key"]]
    assert seeded.cli_calls, "the CLI was not called"
    for call in seeded.cli_calls:
        for value in values:
            assert value not in call


def test_seed_refuses_to_run_without_its_variables(vault_server: VaultServer, run_seed: Seed) -> None:
    """Without ROTATOR_VAULT_TOKEN the script stops before calling Vault, naming the variable."""
    run = run_seed({"VAULT_ADDR": vault_server.address, "VAULT_TOKEN": vault_server.token})
    assert run.returncode != 0
    assert "ROTATOR_VAULT_TOKEN" in run.output
    assert run.cli_calls == []


def test_rotator_without_the_seeded_token_cannot_start(
    vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before `seed` has run, Vault refuses the rotator's token: a typed error that does not show the token."""
    token = f"rotator-unseeded-{secrets.token_hex(4)}"
    settings = compose_settings(vault_server, token, monkeypatch)
    with App(settings) as app, pytest.raises(VaultAuthError) as refused:
        _ = app.audit_key
    assert token not in str(refused.value)
    assert token not in repr(refused.value)


def _read(client: hvac.Client, path: str) -> dict[str, str]:
    response = client.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    return response["data"]["data"]  # type: ignore[no-any-return]
