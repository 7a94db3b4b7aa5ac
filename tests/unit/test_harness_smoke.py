"""The harness starts real servers: a query and a Vault call answer."""

import hvac
import sqlalchemy as sa

from tests.harness import VaultServer


def test_database_is_isolated_and_answers(database_url: str) -> None:
    """Each test gets its own database on a real PostgreSQL server."""
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        name = conn.execute(sa.text("select current_database()")).scalar_one()
    engine.dispose()
    assert name.startswith("t_")


def test_vault_answers_with_root_token(vault_server: VaultServer) -> None:
    """The Vault-compatible server is unsealed and the root token works."""
    client = hvac.Client(url=vault_server.address, token=vault_server.token)
    assert client.is_authenticated()
    assert not client.sys.is_sealed()
