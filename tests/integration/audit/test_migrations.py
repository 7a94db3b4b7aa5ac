"""Migrations: upgrade from empty, downgrade to base, upgrade again; the schema matches tables.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from service.audit import migrate, schema
from service.audit.tables import metadata
from service.errors import SchemaNotCurrent

REPO = Path(__file__).resolve().parents[3]
TABLES = {"audit_events", "audit_chain_head", "rotation_state", "leases", "pauses", "pins"}


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(empty_engine: Engine) -> None:
    """An empty database upgrades to head, downgrades to base with nothing left, and upgrades again."""
    assert schema.current(empty_engine) is None
    migrate.upgrade(empty_engine)
    assert schema.current(empty_engine) == schema.head()
    assert _tables(empty_engine) == TABLES
    migrate.downgrade(empty_engine, "base")
    assert schema.current(empty_engine) is None
    assert _tables(empty_engine) == set()
    with empty_engine.connect() as conn:
        functions = conn.execute(sa.text("SELECT proname FROM pg_proc WHERE proname LIKE 'audit_%'")).scalars().all()
    assert functions == []
    migrate.upgrade(empty_engine)
    assert _tables(empty_engine) == TABLES
    assert schema.require_head(empty_engine) == schema.head()


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    """Upgrading a database already at head changes nothing."""
    migrate.upgrade(engine)
    assert schema.current(engine) == schema.head()


def test_migrated_schema_matches_the_table_definitions(engine: Engine) -> None:
    """Alembic finds no difference between the migrated schema and service.audit.tables."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_the_reading_without_alembic_agrees_with_alembic(empty_engine: Engine) -> None:
    """schema.py (what `rotator run` checks) reads the revisions and the database's revision as Alembic does."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert schema.head() == scripts.get_current_head()
    assert schema.revisions() == {script.revision: script.down_revision for script in scripts.walk_revisions()}
    oldest_first = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    seen = []
    for revision in [*oldest_first, "base"]:
        if revision == "base":
            migrate.downgrade(empty_engine, "base")
        else:
            migrate.upgrade(empty_engine, revision)
        with empty_engine.connect() as conn:
            by_alembic = MigrationContext.configure(conn).get_current_revision()
        seen.append((schema.current(empty_engine), by_alembic))
    assert [ours for ours, _ in seen] == [*oldest_first, None]
    assert all(ours == theirs for ours, theirs in seen)


def test_the_worker_s_schema_check_imports_no_alembic(engine: Engine) -> None:
    """`rotator run` never migrates: its modules and its schema check leave Alembic (about 10 MB) unimported."""
    code = (
        "import sys, types, sqlalchemy, service.worker\n"
        "from service.app import App\n"
        "engine = sqlalchemy.create_engine(sys.argv[1])\n"
        "App.require_schema(types.SimpleNamespace(engine=engine))  # the worker's own check, on a database at head\n"
        "print(sorted(m for m in ('alembic', 'mako', 'apprise') if m in sys.modules))"
    )
    url = engine.url.render_as_string(hide_password=False)
    shown = subprocess.run([sys.executable, "-c", code, url], cwd=REPO, check=True, capture_output=True, timeout=60)
    assert shown.stdout.decode().strip() == "[]"


def test_require_head_refuses_an_empty_database(empty_engine: Engine) -> None:
    """`rotator run` refuses a database without the schema and says which command to run."""
    with pytest.raises(SchemaNotCurrent) as caught:
        schema.require_head(empty_engine)
    assert caught.value.current is None
    assert caught.value.head == schema.head()
    assert "rotator db upgrade" in str(caught.value)


def test_require_head_refuses_an_older_revision(engine: Engine) -> None:
    """A database at an older revision is named in the error with the head it should reach."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'older'"))
    with pytest.raises(SchemaNotCurrent, match=rf"revision older, head is {schema.head()}.*this rotator"):
        schema.require_head(engine)


def test_plain_alembic_cli_reads_pyproject(empty_engine: Engine, database_url: str) -> None:
    """`alembic upgrade head` from the repo root migrates the database named by ROTATOR_DATABASE_URL."""
    env = {**os.environ, "ROTATOR_DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}
    alembic = [sys.executable, "-m", "alembic"]
    subprocess.run([*alembic, "upgrade", "head"], cwd=REPO, env=env, check=True, capture_output=True, timeout=60)
    shown = subprocess.run([*alembic, "current"], cwd=REPO, env=env, check=True, capture_output=True, timeout=60)
    assert schema.head() in shown.stdout.decode()
    assert schema.current(empty_engine) == schema.head()


def test_check_constraints_carry_the_metadata_names(engine: Engine) -> None:
    """Constraint names in the database are those of tables.py (Alembic's compare skips checks)."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        stored = {check["name"] for check in inspector.get_check_constraints(table.name)}
        declared = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        assert stored == declared, table.name


def test_rows_written_before_format_2_still_verify_after_the_upgrade(empty_engine: Engine) -> None:
    """Rows chained at revision 0001 keep their hashes; rows appended after 0002 chain on from them."""
    import dataclasses
    from datetime import UTC, datetime

    from service.audit.chain import GENESIS, event_row, row_hash
    from service.audit.store import AuditStore
    from service.audit.tables import FORMAT_2_COLUMNS
    from service.audit.verify import verify_chain
    from service.model import AuditEvent, EventType, Trigger

    migrate.upgrade(empty_engine, "0001")
    event = AuditEvent(
        event=EventType.INTENT, run_id="r1", target="eu", api_host="api.example.com", secret="reg-0001",
        registries=("ghcr.io",), trigger=Trigger.SCHEDULE, actor="rotator/0.1@pod-0",
    )  # fmt: skip
    prev, at = GENESIS, datetime(2026, 1, 1, tzinfo=UTC)
    with empty_engine.begin() as conn:
        for seq in (1, 2):
            row = {**event_row(event, seq=seq, recorded_at=at), "format": 1}
            digest = row_hash(prev, row)
            stored = {k: v for k, v in row.items() if k not in FORMAT_2_COLUMNS}
            columns = ", ".join(stored) + ", prev_hash, row_hash"
            values = ", ".join(f":{k}" for k in stored) + ", :prev_hash, :row_hash"
            conn.execute(
                sa.text(f"INSERT INTO audit_events ({columns}) VALUES ({values})"),  # noqa: S608 (column names are ours)
                {**stored, "prev_hash": prev, "row_hash": digest},
            )
            prev = digest
        conn.execute(sa.text("UPDATE audit_chain_head SET seq = 2, row_hash = :h"), {"h": prev})
    migrate.upgrade(empty_engine)
    AuditStore(empty_engine).append([dataclasses.replace(event, operator="ops@host", reason="a test")])
    result = verify_chain(empty_engine)
    assert result.problem is None
    assert result.rows_checked == 3
    with empty_engine.connect() as conn:
        formats = conn.execute(sa.text("SELECT format FROM audit_events ORDER BY seq")).scalars().all()
    assert formats == [1, 1, 2]
