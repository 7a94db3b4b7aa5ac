"""The Vault session reads requests' environment settings once, at connect, and still honours them."""

from __future__ import annotations

import pytest

from service.config import VaultAuthConfig, VaultConfig
from service.errors import SourceError
from service.sandbox.processes import free_port
from service.vault import connect
from tests.harness import VaultServer
from tests.integration.vault.conftest import read_local


def test_a_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it(
    vault_server: VaultServer, root_auth: VaultAuthConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY at a closed port makes connect fail; NO_PROXY naming Vault's host lets it through."""
    config = VaultConfig(address=vault_server.address, auth=root_auth)
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("HTTPS_PROXY", dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(SourceError):
        connect(config, read_local=read_local)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    session = connect(config, read_local=read_local)
    try:
        session.check()
    finally:
        session.close()


def test_the_session_stops_reading_the_environment_per_request(
    vault_server: VaultServer, root_auth: VaultAuthConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy set after connect is not picked up: the environment was read once, at connect."""
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    session = connect(VaultConfig(address=vault_server.address, auth=root_auth), read_local=read_local)
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
        session.check()
    finally:
        session.close()
