"""``AuditStore``: appends to the hash-chained audit trail (``service.ports.AuditLog``).

Appends are serialised by locking the one row of ``audit_chain_head`` ``FOR UPDATE``: the
appender reads the head, numbers its batch head.seq + 1, ..., hashes it, inserts it in one
statement, moves the head and commits, all in one transaction. So replicas share one chain
without gaps (a rolled-back batch consumes no number), and ``recorded_at`` (the server's
``clock_timestamp()`` read under the lock) never goes backwards along the chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from service.audit.chain import chained_rows, record_from_row
from service.audit.db import translated, where
from service.audit.tables import audit_chain_head, audit_events
from service.logs import get_logger, redact_text
from service.model import AuditEvent, AuditRecord, ChainHead, EventType

MESSAGE_MAX = 1000  # characters of a sanitised message kept in the trail
log = get_logger(__name__)
_COLUMNS = tuple(column.name for column in audit_events.columns)
_COPY = f"COPY audit_events ({', '.join(_COLUMNS)}) FROM STDIN"
# The clock is read by the outer query, after the subquery took the lock (and saw the head as
# the previous appender committed it): recorded_at never goes backwards along the chain.
_LOCK_HEAD = sa.text(
    "SELECT head.seq, head.row_hash, clock_timestamp()"
    " FROM (SELECT seq, row_hash FROM audit_chain_head FOR UPDATE) AS head"
)
_MOVE_HEAD = sa.update(audit_chain_head).values(
    seq=sa.bindparam("seq"), row_hash=sa.bindparam("row_hash"), updated_at=sa.bindparam("now")
)


def sanitise(event: AuditEvent) -> AuditEvent:
    """Second line of defence: mask credential-shaped text in the message and bound its length."""
    if event.message is None:
        return event
    return dataclasses.replace(event, message=redact_text(event.message)[:MESSAGE_MAX])


class AuditStore:
    """The append-only audit trail in PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append ``events`` in order as one transaction, committed before returning."""
        if not events:
            return []
        with translated(f"append to the audit trail at {where(self._engine)}"), self._engine.begin() as conn:
            records = self._append(conn, [sanitise(event) for event in events])
        log.info("audit.appended", first_seq=records[0].seq, last_seq=records[-1].seq, count=len(records))
        return records

    @staticmethod
    def _append(conn: Connection, events: list[AuditEvent]) -> list[AuditRecord]:
        seq, prev, now = conn.execute(_LOCK_HEAD).one()
        chained = chained_rows(events, head=ChainHead(seq, prev), recorded_at=now)
        _copy_rows(conn, [row for _, row in chained])
        last = chained[-1][0]
        conn.execute(_MOVE_HEAD, {"seq": last.seq, "row_hash": last.row_hash, "now": now})
        return [record for record, _ in chained]

    def head(self) -> ChainHead | None:
        """The newest row's place in the chain, or None while the trail is empty."""
        query = sa.select(audit_events.c.seq, audit_events.c.row_hash).order_by(audit_events.c.seq.desc()).limit(1)
        with translated(f"read the audit chain head at {where(self._engine)}"), self._engine.connect() as conn:
            row = conn.execute(query).first()
        return ChainHead(row.seq, row.row_hash) if row is not None else None

    def log_anchor(self) -> ChainHead | None:
        """Log the head as ``audit.anchor`` (the anchor outside the database); call it after each sweep."""
        head = self.head()
        if head is not None:
            log.info("audit.anchor", seq=head.seq, row_hash=head.row_hash, anchor=str(head))
        return head

    def open_intents(self, *, after: int = 0) -> list[AuditRecord]:
        """Intents after seq ``after`` that no later row names in ``intent_seq``, oldest first.

        ``after`` keeps the periodic pass cheap: a range scan of (event, seq) instead of every intent.
        """
        outcome = audit_events.alias("outcome")
        query = (
            sa.select(audit_events)
            .where(audit_events.c.event == EventType.INTENT.value)
            .where(audit_events.c.seq > after)
            .where(~sa.exists().where(outcome.c.intent_seq == audit_events.c.seq))
            .order_by(audit_events.c.seq)
        )
        with translated(f"read open intents at {where(self._engine)}"), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [record_from_row(row) for row in rows]


def _copy_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with one COPY on the transaction's own connection.

    About half the CPU of an executemany per row (bench: 45 vs 85 us a row in batches of 64),
    and one round trip. INSERT privilege, constraints and the append-only trigger apply as to
    an INSERT; a failure aborts the transaction like any statement's.
    """
    driver = conn.connection.driver_connection
    assert driver is not None, "a connection in a transaction has its driver connection"
    with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
        for row in rows:
            copy.write_row([row[name] for name in _COLUMNS])
