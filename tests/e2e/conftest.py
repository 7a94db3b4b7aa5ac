"""Fixtures for the end-to-end tests: a ``Scene`` per test on the session's real servers.

Each test gets its own database (``database_url``), its own KV v2 mount in the session's
OpenBao (disabled afterwards), an in-process AI Core emulator and a work directory for
the configuration and service keys. Every process a test starts is killed at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from service.audit import migrate
from service.sandbox.aicore_emulator import AICoreEmulator
from tests.e2e.scene import Scene, kv_mount
from tests.harness import VaultServer


@pytest.fixture
def root_vault(vault_server: VaultServer) -> Iterator[hvac.Client]:
    """An hvac client with the session server's root token, for arranging Vault."""
    client = hvac.Client(url=vault_server.address, token=vault_server.token)
    yield client
    client.adapter.close()


@pytest.fixture
def bare_scene(
    tmp_path: Path, database_url: str, vault_server: VaultServer, root_vault: hvac.Client
) -> Iterator[Scene]:
    """A scene whose database has no schema yet."""
    with kv_mount(root_vault) as mount, AICoreEmulator() as emulator:
        scene = Scene(
            workdir=tmp_path,
            database_url=database_url,
            vault=vault_server,
            root=root_vault,
            mount=mount,
            emulator=emulator,
        )
        try:
            yield scene
        finally:
            scene.close()


@pytest.fixture
def scene(bare_scene: Scene) -> Scene:
    """A scene whose database is migrated to head."""
    migrate.upgrade(bare_scene.engine)
    return bare_scene
