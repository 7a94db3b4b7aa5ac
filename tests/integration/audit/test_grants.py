"""`rotator db grants`: the printed SQL, run on a real server, gives each role exactly what it needs."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from service.audit import commands
from service.audit.controls import PostgresControls
from service.audit.db import make_engine
from service.audit.instance import InstanceLock
from service.audit.queries import AuditFilter, list_events
from service.audit.state import PostgresStateStore
from service.audit.store import AuditStore
from service.audit.verify import verify_chain
from service.config import DatabaseConfig
from service.controls import Pause, Pin, Scope
from service.errors import AuditError
from service.model import EventType, RotationKey, RotationState
from tests.integration.audit.conftest import make_event


@pytest.fixture
def roles(engine: Engine, database_url: str) -> Iterator[dict[str, Engine]]:
    """An app and a reader role with the printed grants applied; an engine connected as each."""
    suffix = uuid.uuid4().hex[:8]
    names = {"app": f"rotator_app_{suffix}", "reader": f"rotator_reader_{suffix}"}
    out = io.StringIO()
    assert commands.db_grants(app_role=names["app"], reader_role=names["reader"], out=out) == 0
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE ROLE "{name}" LOGIN')
        conn.execute(out.getvalue())
    engines = {
        role: make_engine(
            DatabaseConfig(url=make_url(database_url).set(username=name).render_as_string()), password=None
        )
        for role, name in names.items()
    }
    yield engines
    for own in engines.values():
        own.dispose()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET secret = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DELETE FROM rotation_state",
        "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    ],
)
def test_app_role_cannot_change_the_trail(roles: dict[str, Engine], statement: str) -> None:
    """The application role is refused by privileges (before any trigger) when it changes the trail."""
    AuditStore(roles["app"]).append([make_event()])
    with pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner"), roles["app"].begin() as conn:
        conn.execute(sa.text(statement))


def test_app_role_runs_the_service(roles: dict[str, Engine]) -> None:
    """As the app role: append, read the head and open intents, claim, save and release leases."""
    store = AuditStore(roles["app"])
    [intent] = store.append([make_event()])
    assert store.head() is not None
    assert store.open_intents() == [intent]
    key = RotationKey("eu", "ghcr-pull")
    with InstanceLock(roles["app"], "app-0") as lock:
        state = PostgresStateStore(roles["app"], instance=lock)
        grant = state.claim([key], owner="app-0", ttl=timedelta(minutes=1), due_by=None)[key]
        assert state.save([RotationState(key=key, last_outcome="applied")], release=[grant]) == []
        assert state.load()[key].last_outcome == "applied"


def test_reader_role_only_reads(roles: dict[str, Engine]) -> None:
    """As the reader role: list and verify work; appending is refused."""
    AuditStore(roles["app"]).append([make_event(), make_event()])
    assert len(list_events(roles["reader"], AuditFilter(), limit=10)) == 2
    assert verify_chain(roles["reader"]).ok
    out = io.StringIO()
    assert commands.audit_verify(roles["reader"], anchor=None, out=out) == 0
    with pytest.raises(AuditError, match="InsufficientPrivilege"):
        AuditStore(roles["reader"]).append([make_event()])
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), roles["reader"].begin() as conn:
        conn.execute(sa.text("UPDATE rotation_state SET last_outcome = 'x'"))


@pytest.mark.parametrize(
    ("app", "reader", "message"),
    [
        ("rotator_app", "rotator_app", "must differ"),
        ('app"; DROP TABLE audit_events; --', "reader", "role name"),
        ("App", "reader", "role name"),
    ],
)
def test_bad_role_names_exit_2(app: str, reader: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Role names that would need quoting tricks, or the same role twice, are refused with exit code 2."""
    out = io.StringIO()
    assert commands.db_grants(app_role=app, reader_role=reader, out=out) == 2
    assert out.getvalue() == ""
    assert message in capsys.readouterr().err


def test_app_role_pauses_and_pins(roles: dict[str, Engine]) -> None:
    """As the app role: pause, resume, pin, re-pin and unpin, each with its audit row."""
    controls = PostgresControls(roles["app"])
    key = RotationKey("eu", "ghcr-pull")
    pause = Pause(scope=Scope(secret="ghcr-pull"), operator="alice", reason="incident 7")
    assert controls.pause(pause, event=make_event(event=EventType.PAUSED)) is None
    assert controls.resume(pause.scope, event=make_event(event=EventType.RESUMED)) is not None
    pin = Pin(key=key, version=2, operator="alice", reason="bad push")
    controls.pin(pin, event=make_event(event=EventType.PINNED))
    controls.pin(replace(pin, version=1), event=make_event(event=EventType.PINNED))
    assert controls.holds([key]).pins[key].version == 1
    assert controls.unpin(key, event=make_event(event=EventType.UNPINNED)) is not None
    events = [row["event"] for row in list_events(roles["reader"], AuditFilter(), limit=10)]
    assert events == ["unpinned", "pinned", "pinned", "resumed", "paused"]
