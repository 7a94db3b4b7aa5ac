"""Verify the hash chain: stream every row in order, recompute, and name the first problem.

``ChainWalker`` is the pure part (fed rows one by one, constant memory); ``verify_chain``
streams the table through a server-side cursor inside one read-only REPEATABLE READ
transaction, so the rows and the recorded chain head come from one snapshot.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from service.audit.chain import GENESIS, RowLike, row_hash
from service.audit.db import translated, where
from service.audit.tables import audit_chain_head, audit_events
from service.model import ChainHead

REORDER_WINDOW = 64  # how far from its place a moved row is looked for
BATCH = 2000  # rows per FETCH: memory is bounded by one batch


class ProblemKind(enum.StrEnum):
    CHANGED = "changed"
    MISSING = "missing"
    REORDERED = "reordered"
    DELETED_AFTER_ANCHOR = "deleted_after_anchor"
    HEAD_MISMATCH = "head_mismatch"


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    rows_checked: int
    head: ChainHead | None  # the last row checked
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class ChainWalker:
    """Checks rows fed in ``seq`` order; remembers only the previous row's place and hash."""

    def __init__(self, *, anchor: ChainHead | None = None, anchors: Iterable[ChainHead] = ()) -> None:
        heads = [*anchors, *([anchor] if anchor else [])]
        self.anchor = max(heads, key=lambda head: head.seq) if heads else None  # the newest: it pins the most
        self.anchored: dict[int, set[str]] = {}
        for head in heads:
            self.anchored.setdefault(head.seq, set()).add(head.row_hash)
        self.rows_checked = 0
        self.last: ChainHead | None = None

    def feed(self, row: RowLike) -> ChainProblem | None:
        """Check one row; the first problem found, or None."""
        expected = self.last.seq + 1 if self.last else 1
        problem = self._check(row, expected)
        if problem is None:
            self.rows_checked += 1
            self.last = ChainHead(row["seq"], row["row_hash"])
        return problem

    def _check(self, row: RowLike, expected: int) -> ChainProblem | None:
        seq = row["seq"]
        if seq != expected:
            gap = f"row {expected} is" if seq == expected + 1 else f"rows {expected}..{seq - 1} are"
            return ChainProblem(expected, ProblemKind.MISSING, f"{gap} missing (the next row is {seq})")
        try:
            intact = row_hash(row["prev_hash"], row) == row["row_hash"]
        except (ValueError, TypeError):  # a value the encoding cannot hold: not written by the appender
            return ChainProblem(seq, ProblemKind.CHANGED, f"row {seq} holds a value the canonical encoding cannot hold")
        if not intact:
            return _changed_or_moved(row)
        if row["prev_hash"] != (self.last.row_hash if self.last else GENESIS):
            return _broken_link(seq)
        if self.anchored and seq in self.anchored and self.anchored[seq] != {row["row_hash"]}:
            detail = f"row {seq}'s row_hash differs from the anchor: the chain up to {seq} was rewritten"
            return ChainProblem(seq, ProblemKind.CHANGED, detail)
        return None

    def finish(self, recorded: ChainHead | None) -> ChainProblem | None:
        """After the last row: compare with the anchor and the head recorded in the database."""
        last_seq = self.last.seq if self.last else 0
        if self.anchor and last_seq < self.anchor.seq:
            detail = f"the trail ends at seq {last_seq} but the anchor names seq {self.anchor.seq}"
            return ChainProblem(last_seq + 1, ProblemKind.DELETED_AFTER_ANCHOR, f"{detail}: newer rows were deleted")
        if recorded is not None and recorded != (self.last or ChainHead(0, GENESIS)):
            return _head_mismatch(recorded, self.last)
        return None


def _changed_or_moved(row: RowLike) -> ChainProblem:
    seq = row["seq"]
    for place in range(max(1, seq - REORDER_WINDOW), seq + REORDER_WINDOW + 1):
        if place != seq and row_hash(row["prev_hash"], {**row, "seq": place}) == row["row_hash"]:
            detail = f"the row stored as seq {seq} was appended as seq {place} (rows renumbered or reordered)"
            return ChainProblem(seq, ProblemKind.REORDERED, detail)
    return ChainProblem(seq, ProblemKind.CHANGED, f"row {seq}'s content does not match its row_hash")


def _broken_link(seq: int) -> ChainProblem:
    if seq == 1:
        return ChainProblem(1, ProblemKind.CHANGED, "row 1 does not start from the genesis hash")
    detail = f"row {seq - 1} was rewritten: its row_hash is no longer row {seq}'s prev_hash"
    return ChainProblem(seq - 1, ProblemKind.CHANGED, detail)


def _head_mismatch(recorded: ChainHead, last: ChainHead | None) -> ChainProblem:
    last_seq = last.seq if last else 0
    if recorded.seq > last_seq:
        detail = (
            f"the recorded chain head is seq {recorded.seq} but the last row is seq {last_seq}: newest rows deleted"
        )
        return ChainProblem(last_seq + 1, ProblemKind.HEAD_MISMATCH, detail)
    if recorded.seq < last_seq:
        detail = f"rows after the recorded chain head (seq {recorded.seq}) were inserted outside the appender"
        return ChainProblem(recorded.seq + 1, ProblemKind.HEAD_MISMATCH, detail)
    detail = f"row {last_seq}'s row_hash differs from the recorded chain head: row {last_seq} was rewritten"
    return ChainProblem(last_seq, ProblemKind.HEAD_MISMATCH, detail)


def verify_chain(
    engine: Engine, *, anchor: ChainHead | None = None, anchors: Iterable[ChainHead] = (), batch: int = BATCH
) -> VerifyResult:
    """Recompute the whole chain in bounded memory; stop at the first problem; hold every anchored head."""
    walker = ChainWalker(anchor=anchor, anchors=anchors)
    with translated(f"verify the audit trail at {where(engine)}"), _snapshot(engine) as conn:
        recorded = conn.execute(sa.select(audit_chain_head.c.seq, audit_chain_head.c.row_hash)).first()
        rows = conn.execution_options(yield_per=batch).execute(sa.select(audit_events).order_by(audit_events.c.seq))
        names = tuple(rows.keys())
        for values in rows:  # plain tuples zipped into dicts: faster than RowMapping lookups
            problem = walker.feed(dict(zip(names, values, strict=True)))
            if problem is not None:
                rows.close()
                return VerifyResult(walker.rows_checked, walker.last, problem)
    head = ChainHead(recorded.seq, recorded.row_hash) if recorded else None
    return VerifyResult(walker.rows_checked, walker.last, walker.finish(head))


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only REPEATABLE READ transaction: the rows and the recorded head agree."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn
