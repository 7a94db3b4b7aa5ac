"""No SQLAlchemy or psycopg exception escapes the audit package; messages hold no password."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from service.audit import commands, migrate, schema
from service.audit.db import make_engine
from service.audit.instance import InstanceLock
from service.audit.queries import AuditFilter, list_events
from service.audit.state import PostgresStateStore
from service.audit.store import AuditStore
from service.audit.verify import verify_chain
from service.config import DatabaseConfig
from service.errors import AuditError, AuditUnavailable
from service.model import RotationKey
from service.sandbox.processes import free_port
from tests.integration.audit.conftest import make_event

PASSWORD = "sentinel-db-password-7c1e"


@pytest.fixture
def unreachable() -> Iterator[Engine]:
    """An engine whose server does not exist (a closed loopback port), with a password set."""
    config = DatabaseConfig(url=f"postgresql+psycopg://rotator@127.0.0.1:{free_port()}/rotator", connect_timeout="2s")
    engine = make_engine(config, password=PASSWORD)
    yield engine
    engine.dispose()


CALLS: dict[str, Callable[[Engine], Any]] = {
    "append": lambda e: AuditStore(e).append([make_event()]),
    "head": lambda e: AuditStore(e).head(),
    "open_intents": lambda e: AuditStore(e).open_intents(),
    "verify": verify_chain,
    "list": lambda e: list_events(e, AuditFilter(), limit=1),
    "export": lambda e: commands.audit_export(e, fmt="jsonl", since=None, until=None, out=io.StringIO()),
    "current": schema.current,
    "upgrade": migrate.upgrade,
    "instance_lock": lambda e: InstanceLock(e, "x").acquire(),
    "load_state": lambda e: PostgresStateStore(e, instance=InstanceLock(e, "x")).load(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_unreachable_database_is_audit_unavailable(unreachable: Engine, call: str) -> None:
    """Every entry point raises AuditUnavailable (exit code 3), with no library cause and no password."""
    with pytest.raises(AuditUnavailable) as caught:
        CALLS[call](unreachable)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_engine_url_never_shows_the_password(unreachable: Engine) -> None:
    """The password lives in the URL object only: repr and str of the engine mask it."""
    assert PASSWORD not in repr(unreachable)
    assert PASSWORD not in str(unreachable.url)
    assert unreachable.url.password == PASSWORD


def test_engine_settings_come_from_config(engine: Engine) -> None:
    """make_engine uses psycopg 3, the configured pool size, pre-ping and application_name rotator."""
    with engine.connect() as conn:
        name = conn.exec_driver_sql("SHOW application_name").scalar_one()
    assert name == "rotator"
    assert engine.dialect.driver == "psycopg"
    assert engine.pool.size() == 4  # type: ignore[attr-defined]
    assert engine.pool._pre_ping  # type: ignore[attr-defined]


def test_schema_errors_are_audit_errors(empty_engine: Engine) -> None:
    """Using the store on a database without the schema raises AuditError, not a library error."""
    with pytest.raises(AuditError, match="UndefinedTable") as caught:
        AuditStore(empty_engine).append([make_event()])
    assert caught.value.__cause__ is None
    with pytest.raises(AuditError):
        PostgresStateStore(empty_engine, instance=InstanceLock(empty_engine, "x")).load([RotationKey("a", "b")])
    with InstanceLock(empty_engine, "x") as lock, pytest.raises(AuditError):
        PostgresStateStore(empty_engine, instance=lock).claim(
            [RotationKey("a", "b")], owner="x", ttl=timedelta(1), due_by=None
        )
