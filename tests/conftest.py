"""Session fixtures: real PostgreSQL and Vault-compatible servers (see tests/harness.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests import harness


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"rotator harness: postgres={harness.postgres_choice()} vault={harness.vault_choice()}",
    ]


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """SQLAlchemy URL of a role that may create databases, on the session's server."""
    with harness.postgres_server() as url:
        yield url


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(postgres_admin_url)
    name = f"t_{uuid.uuid4().hex[:16]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def vault_server() -> Iterator[harness.VaultServer]:
    """A real Vault-compatible server for the whole session, with its root token."""
    with harness.vault_server() as server:
        yield server
