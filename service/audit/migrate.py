"""Schema migrations (Alembic, configured in code); the check ``rotator run`` makes is ``schema.py``, without Alembic.

Upgrades of several replicas at once are serialised by a transaction-scoped advisory
lock, and each upgrade runs in one transaction (PostgreSQL has transactional DDL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from service.audit.db import translated, where
from service.audit.schema import MIGRATIONS
from service.logs import get_logger

MIGRATION_LOCK = 0x726F7461746F72  # "rotator": one advisory key for schema changes
log = get_logger(__name__)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration, built in code; ``connection`` is handed to env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


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
