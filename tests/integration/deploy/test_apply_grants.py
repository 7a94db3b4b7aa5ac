"""deploy/compose/apply-grants.py against a real PostgreSQL: the rotator's role can append, never rewrite."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.audit import migrate
from service.audit.db import make_engine
from service.config import DatabaseConfig
from tests.deploy_files import REPO

SCRIPT = REPO / "deploy" / "compose" / "apply-grants.py"


@dataclass(frozen=True)
class Database:
    owner: str  # libpq conninfo of the owner (the admin of the test server)
    env: dict[str, str]  # the grants service's environment
    app_role: str
    reader_role: str
    password: str


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database, and unique role names (roles are cluster-wide) dropped afterwards."""
    engine = make_engine(DatabaseConfig(url=database_url), password=None)
    migrate.upgrade(engine)
    engine.dispose()
    url = make_url(database_url)
    suffix = secrets.token_hex(4)
    found = Database(
        owner=url.set(drivername="postgresql").render_as_string(hide_password=False),
        env={
            "PGHOST": url.host or "127.0.0.1",
            "PGPORT": str(url.port or 5432),
            "PGDATABASE": url.database or "",
            "PGUSER": url.username or "",
            "PGPASSWORD": url.password or "",
            "APP_ROLE": f"app_{suffix}",
            "READER_ROLE": f"reader_{suffix}",
            "APP_ROLE_PASSWORD": f"sentinel-app-password-{suffix}",
            "PYTHONPATH": str(REPO),
        },
        app_role=f"app_{suffix}",
        reader_role=f"reader_{suffix}",
        password=f"sentinel-app-password-{suffix}",
    )
    yield found
    with psycopg.connect(found.owner, autocommit=True) as conn:
        for role in (found.app_role, found.reader_role):
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def apply(database: Database, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | database.env | env
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=environ, capture_output=True, text=True, cwd=REPO, check=False
    )


def as_app(database: Database) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(make_url(database.owner).set(username=database.app_role).render_as_string(), autocommit=True)


def test_app_role_can_append_and_read_but_not_rewrite(database: Database) -> None:
    """After the step the app role reads and inserts audit rows but may not UPDATE, DELETE or create tables."""
    result = apply(database)
    assert result.returncode == 0, result.stderr
    with as_app(database) as conn:
        conn.execute("SELECT count(*) FROM audit_events").fetchone()
        for statement in ("UPDATE audit_events SET seq = seq", "DELETE FROM audit_events", "CREATE TABLE x (i int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_password_is_stored_as_a_scram_hash(database: Database) -> None:
    """The app role's password is set, as a SCRAM-SHA-256 verifier: the clear text never reached the server."""
    assert apply(database).returncode == 0
    with psycopg.connect(database.owner) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (database.app_role,)).fetchone()
    assert row is not None
    assert str(row[0]).startswith("SCRAM-SHA-256$")
    assert database.password not in str(row[0])


def test_step_can_run_again(database: Database) -> None:
    """A second run (e.g. `docker compose up` again) finds the roles and succeeds."""
    assert apply(database).returncode == 0
    second = apply(database)
    assert second.returncode == 0, second.stderr
    assert f"{database.app_role} may use the rotator's tables" in second.stdout


def test_missing_password_is_refused_with_one_line(database: Database) -> None:
    """Without APP_ROLE_PASSWORD the step exits 2 naming the variable, and creates nothing."""
    result = apply(database, APP_ROLE_PASSWORD="")
    assert result.returncode == 2
    assert result.stderr.strip() == "apply-grants: APP_ROLE_PASSWORD is not set"
    with psycopg.connect(database.owner) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database.app_role,)).fetchone() is None
    apply(database)  # the fixture drops the roles it expects
