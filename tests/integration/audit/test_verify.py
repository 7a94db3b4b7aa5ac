"""`verify_chain` against real tampering by a superuser who switches the triggers off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from service.audit.chain import row_hash
from service.audit.store import AuditStore
from service.audit.tables import audit_events
from service.audit.verify import ProblemKind, verify_chain
from service.model import ChainHead, EventType
from tests.integration.audit.conftest import make_event

ROWS = 6


@pytest.fixture
def trail(store: AuditStore) -> list[ChainHead]:
    """Six rows in three batches; returns each row's place in the chain."""
    records = store.append([make_event(secret="one-sec"), make_event(event=EventType.APPLIED, intent_seq=1)])
    records += store.append([make_event(secret="two-sec")])
    records += store.append([make_event(secret="three-sec"), make_event(), make_event(event=EventType.FAILED)])
    return [ChainHead(record.seq, record.row_hash) for record in records]


def _tamper(engine: Engine, *statements: str | sa.TextClause) -> None:
    """Run statements as a superuser with every trigger of both audit tables switched off."""
    with engine.begin() as conn:
        for table in ("audit_events", "audit_chain_head"):
            conn.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        for statement in statements:
            conn.execute(sa.text(statement) if isinstance(statement, str) else statement)
        for table in ("audit_events", "audit_chain_head"):
            conn.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))


def _rehash_from(conn: Connection, first: int) -> Iterator[ChainHead]:
    """Recompute the chain from row ``first`` on, as a careful attacker would."""
    rows = conn.execute(sa.select(audit_events).where(audit_events.c.seq >= first - 1).order_by("seq")).mappings()
    previous = None
    for row in rows:
        if previous is not None:
            digest = row_hash(previous, row)
            conn.execute(
                sa.update(audit_events)
                .where(audit_events.c.seq == row["seq"])
                .values(prev_hash=previous, row_hash=digest)
            )
            previous = digest
            yield ChainHead(row["seq"], digest)
        else:
            previous = row["row_hash"]


def test_intact_chain_verifies(engine: Engine, trail: list[ChainHead]) -> None:
    """An untouched trail verifies: every row checked, head = the newest row."""
    result = verify_chain(engine)
    assert result.ok
    assert result.rows_checked == ROWS
    assert result.head == trail[-1]


def test_small_batches_stream_the_same_result(engine: Engine, trail: list[ChainHead]) -> None:
    """Streaming in batches of two gives the same result as one batch."""
    assert verify_chain(engine, batch=2) == verify_chain(engine, batch=1000)


def test_empty_trail_verifies(engine: Engine) -> None:
    """No rows: nothing to check, no head, no problem."""
    result = verify_chain(engine)
    assert (result.ok, result.rows_checked, result.head) == (True, 0, None)


def test_changed_row_is_named(engine: Engine, trail: list[ChainHead]) -> None:
    """A row changed in place (hash left alone) is reported as changed at its seq."""
    _tamper(engine, "UPDATE audit_events SET registry_username = 'attacker' WHERE seq = 3")
    result = verify_chain(engine)
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (3, ProblemKind.CHANGED)
    assert result.rows_checked == 2


def test_changed_row_with_recomputed_hash_is_named(engine: Engine, trail: list[ChainHead]) -> None:
    """A row changed and re-hashed breaks the link to the next row: reported as changed at its seq."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET message = 'nothing happened' WHERE seq = 3"))
        row = conn.execute(sa.select(audit_events).where(audit_events.c.seq == 3)).mappings().one()
        forged = row_hash(row["prev_hash"], row)
        conn.execute(sa.text("UPDATE audit_events SET row_hash = :forged WHERE seq = 3"), {"forged": forged})
        conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
    problem = verify_chain(engine).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, ProblemKind.CHANGED)
    assert "rewritten" in problem.detail


def test_deleted_row_is_missing(engine: Engine, trail: list[ChainHead]) -> None:
    """A row deleted from the middle is reported missing at its seq."""
    _tamper(engine, "DELETE FROM audit_events WHERE seq = 3")
    problem = verify_chain(engine).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, ProblemKind.MISSING)
    assert "next row is 4" in problem.detail


def test_deleted_and_renumbered_rows_are_reordered(engine: Engine, trail: list[ChainHead]) -> None:
    """Rows renumbered to close a gap no longer match the seq they were hashed with."""
    _tamper(engine, "DELETE FROM audit_events WHERE seq = 3", "UPDATE audit_events SET seq = seq - 1 WHERE seq > 3")
    problem = verify_chain(engine).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, ProblemKind.REORDERED)
    assert "appended as seq 4" in problem.detail


def test_swapped_rows_are_reordered(engine: Engine, trail: list[ChainHead]) -> None:
    """Two rows that swapped places are reported as reordered at the first."""
    _tamper(
        engine,
        "UPDATE audit_events SET seq = 1004 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 1004",
    )
    problem = verify_chain(engine).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, ProblemKind.REORDERED)


def test_deleted_newest_rows_break_the_recorded_head(engine: Engine, trail: list[ChainHead]) -> None:
    """Deleting the newest rows leaves the chain head row ahead of the table: head_mismatch."""
    _tamper(engine, "DELETE FROM audit_events WHERE seq >= 5")
    result = verify_chain(engine)
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (5, ProblemKind.HEAD_MISMATCH)
    assert result.rows_checked == 4


def test_deleted_newest_rows_need_the_anchor_when_the_head_is_forged_too(
    engine: Engine, trail: list[ChainHead]
) -> None:
    """With the head row forged as well, only an anchor logged earlier reveals the deletion."""
    _tamper(
        engine,
        "DELETE FROM audit_events WHERE seq >= 5",
        sa.text("UPDATE audit_chain_head SET seq = 4, row_hash = :h").bindparams(h=trail[3].row_hash),
    )
    assert verify_chain(engine).ok
    problem = verify_chain(engine, anchor=trail[-1]).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (5, ProblemKind.DELETED_AFTER_ANCHOR)


def test_rewritten_chain_is_caught_by_the_anchor(engine: Engine, trail: list[ChainHead]) -> None:
    """A chain rewritten from row 3 on (every hash recomputed, head forged) differs from the anchor."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER ALL"))
        conn.execute(sa.text("ALTER TABLE audit_chain_head DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET registry_username = 'attacker' WHERE seq = 3"))
        *_, new_head = _rehash_from(conn, 3)
        conn.execute(sa.text("UPDATE audit_chain_head SET row_hash = :h"), {"h": new_head.row_hash})
        conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
        conn.execute(sa.text("ALTER TABLE audit_chain_head ENABLE TRIGGER ALL"))
    assert verify_chain(engine).ok
    problem = verify_chain(engine, anchor=trail[-1]).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (ROWS, ProblemKind.CHANGED)
    assert "anchor" in problem.detail


def test_matching_anchor_verifies(engine: Engine, trail: list[ChainHead]) -> None:
    """An anchor taken earlier that the chain still contains verifies, also when rows were added since."""
    assert verify_chain(engine, anchor=trail[2]).ok
    assert verify_chain(engine, anchor=trail[-1]).ok


def test_rows_inserted_behind_the_appenders_back(engine: Engine, trail: list[ChainHead]) -> None:
    """A row inserted directly (head row not moved) is reported as a head mismatch."""
    with engine.begin() as conn:
        row = dict(conn.execute(sa.select(audit_events).where(audit_events.c.seq == ROWS)).mappings().one())
        row.update(seq=ROWS + 1, prev_hash=row["row_hash"])
        row["row_hash"] = row_hash(row["prev_hash"], row)
        conn.execute(sa.insert(audit_events).values(row))
    problem = verify_chain(engine).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (ROWS + 1, ProblemKind.HEAD_MISMATCH)


def test_a_foreign_fingerprint_text_verifies_and_reads_as_none(engine: Engine, store: AuditStore) -> None:
    """A row whose fingerprint text the rotator could not have written, chained correctly, verifies on that text."""
    store.append([make_event(secret="one-sec"), make_event(event=EventType.APPLIED, intent_seq=1)])
    [intent] = store.append([make_event(secret="two-sec")])
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER ALL"))
        conn.execute(sa.text("ALTER TABLE audit_chain_head DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET fingerprint = 'sha1:legacy-tool:0a1b' WHERE seq = 3"))
        *_, new_head = _rehash_from(conn, 3)
        conn.execute(sa.text("UPDATE audit_chain_head SET row_hash = :h"), {"h": new_head.row_hash})
        conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
        conn.execute(sa.text("ALTER TABLE audit_chain_head ENABLE TRIGGER ALL"))
    result = verify_chain(engine)
    assert (result.ok, result.rows_checked, result.head) == (True, 3, new_head)
    [still_open] = store.open_intents()
    assert (still_open.seq, still_open.row_hash) == (intent.seq, new_head.row_hash)
    assert still_open.event.fingerprint is None
    assert still_open.event.previous_fingerprint == intent.event.previous_fingerprint
