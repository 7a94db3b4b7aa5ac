"""Which schema revision the database is at, and the newest one this version knows, without Alembic.

``rotator run`` checks the schema at start and in its readiness answer; it never migrates.
Importing Alembic for that check cost the idle worker about 10 MB of RSS (Alembic, Mako and
their imports), so the check reads the two things it needs directly:

- the revisions, from the ``revision`` and ``down_revision`` lines of the scripts in
  ``migrations/versions`` (one module-level assignment each, as Alembic's template writes them);
- the database's revision, from Alembic's version table ``alembic_version``.

``migrate.py`` (Alembic itself) upgrades and downgrades; a test holds both readings equal to
Alembic's own (``tests/integration/audit/test_migrations.py``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit.db import translated, where
from service.errors import AuditError, SchemaNotCurrent

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps
_ASSIGNMENT = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*(?:["']([^"']+)["']|None)\s*$""", re.M)


@functools.cache
def revisions() -> dict[str, str | None]:
    """Every revision the scripts define, mapped to the one it follows (None for the first); read once."""
    found: dict[str, str | None] = {}
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        values = {match[1]: match[2] for match in _ASSIGNMENT.finditer(script.read_text(encoding="utf-8"))}
        if "revision" not in values or values["revision"] is None or "down_revision" not in values:
            raise AuditError(f"migration script {script} has no revision and down_revision line")
        found[values["revision"]] = values["down_revision"]
    return found


@functools.cache
def head() -> str:
    """The newest revision this version of the service knows: the one no other revision follows."""
    known = revisions()
    heads = sorted(set(known) - {parent for parent in known.values() if parent is not None})
    if len(heads) != 1:
        raise AuditError(f"expected one head revision in {MIGRATIONS / 'versions'}, found {heads or 'none'}")
    return heads[0]


def current(engine: Engine) -> str | None:
    """The database's revision, or None when it has no schema yet."""
    query = sa.text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 (a constant, no input)
    with translated(f"read the schema revision at {where(engine)}"), engine.connect() as connection:
        if connection.execute(sa.select(sa.func.to_regclass(VERSION_TABLE))).scalar() is None:
            return None
        found = connection.execute(query).scalars().all()
    if len(found) > 1:
        raise AuditError(f"the database at {where(engine)} is at several revisions ({', '.join(sorted(found))})")
    return found[0] if found else None


def require_head(engine: Engine) -> str:
    """The current revision if it is head; else ``SchemaNotCurrent`` saying what to run."""
    at, newest = current(engine), head()
    if at == newest:
        return at
    if at is not None and at not in revisions():
        raise SchemaNotCurrent(
            current=at, head=newest, hint="the database is newer than this rotator: deploy the newer version"
        )
    raise SchemaNotCurrent(current=at, head=newest)
