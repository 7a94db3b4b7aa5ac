"""The Vault session keeps one connection per concurrent reader: none opened and thrown away."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import hvac
import pytest
from structlog.testing import capture_logs

from service.config import SourceConfig, VaultAuthConfig, VaultConfig
from service.vault import VaultSource, connect
from tests.harness import VaultServer
from tests.integration.vault.conftest import read_local, unique

READERS = 16


def read_at_once(source: VaultSource, sources: list[SourceConfig]) -> None:
    """Every source read by its own thread, all released at the same moment."""
    start = threading.Barrier(len(sources))

    def read(config: SourceConfig) -> None:
        start.wait()
        source.read(config)

    threads = [threading.Thread(target=read, args=(config,)) for config in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture
def sources(root: hvac.Client, kv2_mount: str) -> list[SourceConfig]:
    """READERS KV v2 sources, each with its own path."""
    paths = [unique("registry") for _ in range(READERS)]
    for path in paths:
        root.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"username": "robot", "password": "pw"}, mount_point=kv2_mount
        )
    return [SourceConfig(mount=kv2_mount, path=path) for path in paths]


@pytest.mark.parametrize(("max_connections", "discarded"), [(READERS, False), (4, True)])
def test_concurrent_reads_reuse_pooled_connections(
    vault_server: VaultServer,
    root_auth: VaultAuthConfig,
    sources: list[SourceConfig],
    *,
    max_connections: int,
    discarded: bool,
) -> None:
    """With a pool as large as the readers, no connection is discarded; a smaller pool discards (and warns)."""
    config = VaultConfig(address=vault_server.address, auth=root_auth)
    session = connect(config, read_local=read_local, max_connections=max_connections)
    try:
        source = VaultSource(session=session, clock=lambda: datetime.now(UTC))
        with capture_logs() as logs:
            for _ in range(3):
                read_at_once(source, sources)
    finally:
        session.close()
    full = [line for line in logs if line["event"] == "vault.connection_discarded"]
    assert bool(full) is discarded
