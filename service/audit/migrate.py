"""Schema migrations (Alembic, configured in code) and the check that ``rotator run`` makes first.

Upgrades of several replicas at once are serialised by a transaction-scoped advisory
lock, and each upgrade runs in one transaction (PostgreSQL has transactional DDL).
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from service.audit.db import translated, where
from service.errors import AuditError, SchemaNotCurrent
from service.logs import get_logger

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
MIGRATION_LOCK = 0x726F7461746F72  # "rotator": one advisory key for schema changes
log = get_logger(__name__)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration, built in code; ``connection`` is handed to env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    """The newest revision this version of the service knows (read from the scripts once per process)."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise AuditError(f"no migrations found in {MIGRATIONS}")
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision, or None when it has no schema yet."""
    with translated(f"read the schema revision at {where(engine)}"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (head by default), in one transaction."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert to ``revision`` (``base`` removes every table)."""
    _run(engine, "downgrade", revision)


def _run(engine: Engine, direction: str, revision: str) -> None:
    with translated(f"{direction} the schema at {where(engine)} to {revision}"), engine.begin() as connection:
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        before = MigrationContext.configure(connection).get_current_revision()
        getattr(command, direction)(alembic_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
    log.info("db.migrated", direction=direction, before=before, after=after)


def require_head(engine: Engine) -> str:
    """The current revision if it is head; else ``SchemaNotCurrent`` saying what to run."""
    at, newest = current(engine), head()
    if at == newest:
        return at
    if at is not None and at not in _known():
        raise SchemaNotCurrent(
            current=at, head=newest, hint="the database is newer than this rotator: deploy the newer version"
        )
    raise SchemaNotCurrent(current=at, head=newest)


def _known() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
