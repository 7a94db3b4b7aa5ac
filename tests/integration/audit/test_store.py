"""AuditStore: numbering, hashing, round trips, batches as transactions, intents, append-only tables."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit.chain import GENESIS, record_from_row, row_hash
from service.audit.store import AuditStore
from service.audit.tables import audit_chain_head, audit_events
from service.errors import AuditError
from service.model import ChainHead, EventType, Fingerprint
from tests.integration.audit.conftest import make_event


def _rows(engine: Engine) -> list[sa.RowMapping]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings())


def test_first_append_starts_the_chain_at_genesis(store: AuditStore, engine: Engine) -> None:
    """The first row is seq 1 and its prev_hash is 64 zeros; its row_hash covers what is stored."""
    [record] = store.append([make_event()])
    [row] = _rows(engine)
    assert (record.seq, row["seq"]) == (1, 1)
    assert row["prev_hash"] == GENESIS
    assert row["row_hash"] == record.row_hash == row_hash(GENESIS, row)


def test_appends_are_numbered_and_linked(store: AuditStore, engine: Engine) -> None:
    """Batches continue the chain: contiguous seqs, each prev_hash the previous row_hash."""
    store.append([make_event(), make_event(event=EventType.APPLIED, intent_seq=1)])
    store.append([make_event(secret="quay-pull")])
    rows = _rows(engine)
    assert [row["seq"] for row in rows] == [1, 2, 3]
    assert [row["prev_hash"] for row in rows[1:]] == [row["row_hash"] for row in rows[:-1]]
    assert store.head() == ChainHead(3, rows[-1]["row_hash"])


def test_stored_row_round_trips_every_field(store: AuditStore, engine: Engine) -> None:
    """What is read back equals what was appended, field by field."""
    event = make_event(
        event=EventType.FAILED,
        registries=("ghcr.io", "docker.io"),
        http_status=403,
        aicore_request_id="req-9",
        error_code="aicore_forbidden",
        message="forbidden by AI Core",
        duration_ms=1234,
        verification="ok",
        source_version=None,
    )
    [record] = store.append([event])
    [row] = _rows(engine)
    assert record_from_row(row) == record
    assert record.event == event


def test_recorded_at_is_the_server_clock_with_microseconds(store: AuditStore, engine: Engine) -> None:
    """recorded_at comes from the database server's clock, timezone-aware, in one batch equal."""
    with engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    first, second = store.append([make_event(), make_event()])
    assert first.recorded_at == second.recorded_at
    assert first.recorded_at.tzinfo is not None
    assert before <= first.recorded_at < before + timedelta(seconds=30)
    assert _rows(engine)[0]["recorded_at"] == first.recorded_at


def test_append_of_nothing_writes_nothing(store: AuditStore) -> None:
    """An empty batch returns no records and leaves the trail empty."""
    assert store.append([]) == []
    assert store.head() is None


def test_a_failed_batch_leaves_no_row_and_no_gap(store: AuditStore, engine: Engine) -> None:
    """A batch the database refuses is rolled back whole; the next append continues without a gap."""
    store.append([make_event()])
    with pytest.raises(AuditError) as caught:
        store.append([make_event(), make_event(message="nul \x00 byte")])
    assert not isinstance(caught.value.__cause__, Exception)
    assert [row["seq"] for row in _rows(engine)] == [1]
    [record] = store.append([make_event()])
    assert record.seq == 2


def test_chain_head_row_moves_with_each_append(store: AuditStore, engine: Engine) -> None:
    """audit_chain_head holds the newest seq and row_hash after each commit."""
    records = store.append([make_event(), make_event()])
    with engine.connect() as conn:
        head = conn.execute(sa.select(audit_chain_head.c.seq, audit_chain_head.c.row_hash)).one()
    assert (head.seq, head.row_hash) == (2, records[-1].row_hash)


def test_message_is_sanitised_before_it_is_hashed(store: AuditStore, engine: Engine) -> None:
    """A credential-shaped message is masked and bounded; the hash covers the masked text."""
    leaked = "login failed: password=hunter2-sentinel " + "x" * 5000
    [record] = store.append([make_event(message=leaked)])
    [row] = _rows(engine)
    assert "hunter2-sentinel" not in row["message"]
    assert len(row["message"]) == 1000
    assert record.event.message == row["message"]
    assert row_hash(GENESIS, row) == row["row_hash"]


def test_open_intents_are_those_without_an_outcome(store: AuditStore) -> None:
    """Intents whose seq no later row names are open; closed ones are not."""
    first, second, third = store.append([make_event(secret="a-one"), make_event(secret="b-two"), make_event()])
    store.append([make_event(event=EventType.APPLIED, secret="a-one", intent_seq=first.seq)])
    store.append([make_event(event=EventType.INTERRUPTED, intent_seq=third.seq)])
    assert [record.seq for record in store.open_intents()] == [second.seq]
    assert store.open_intents()[0] == second


def test_outcome_cannot_name_a_later_intent(store: AuditStore) -> None:
    """The table refuses an outcome whose intent_seq is not before it."""
    with pytest.raises(AuditError, match="intent_before_outcome"):
        store.append([make_event(event=EventType.APPLIED, intent_seq=5)])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET secret = 'other'",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
        "DELETE FROM audit_chain_head",
        "UPDATE audit_chain_head SET seq = 0",
    ],
)
def test_triggers_refuse_changes_even_for_the_owner(store: AuditStore, engine: Engine, statement: str) -> None:
    """The table owner (here a superuser) cannot update, delete or truncate audit rows, nor roll the head back."""
    store.append([make_event()])
    with pytest.raises(sa.exc.DBAPIError, match=r"append-only|only moves forward"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert len(_rows(engine)) == 1


def test_triggers_fire_under_replication_role(store: AuditStore, engine: Engine) -> None:
    """session_replication_role = replica does not switch the append-only triggers off."""
    store.append([make_event()])
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            conn.execute(sa.text("DELETE FROM audit_events"))
        conn.rollback()
    assert len(_rows(engine)) == 1


def test_database_refusal_is_translated(store: AuditStore, engine: Engine) -> None:
    """A refused write surfaces as AuditError with the constraint, never a SQLAlchemy error or the values."""
    event = dataclasses.replace(
        make_event(), fingerprint=Fingerprint(key_id="secret-looking-value", digest="ab" * 32), intent_seq=7
    )
    with pytest.raises(AuditError) as caught:
        store.append([event])
    assert "secret-looking-value" not in str(caught.value)
    assert "SQLSTATE 23514" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_naive_times_are_refused_by_the_encoding() -> None:
    """The canonical encoding refuses a time without a timezone rather than guess one."""
    row = dict(_example_row(), recorded_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        row_hash(GENESIS, row)


def _example_row() -> dict[str, object]:
    from service.audit.chain import event_row

    return event_row(make_event(), seq=1, recorded_at=datetime(2024, 1, 1, tzinfo=UTC))


def test_anchor_is_logged_for_verify(store: AuditStore) -> None:
    """log_anchor logs the head as SEQ:HASH, the form `audit verify --anchor` takes."""
    from structlog.testing import capture_logs

    assert store.log_anchor() is None
    [record] = store.append([make_event()])
    with capture_logs() as logs:
        head = store.log_anchor()
    assert head == ChainHead(record.seq, record.row_hash)
    assert [entry["anchor"] for entry in logs if entry["event"] == "audit.anchor"] == [f"1:{record.row_hash}"]
