"""The compliance report's numbers: a few aggregate queries over one time window of the trail.

Per (target, secret): rotations applied, failed, rejected, unknown and interrupted; the last
success; the longest outage (from an outcome that was not ``applied`` to the next one that
was, or to the window's end); the registry verification outcomes. Then manual actions
(a row with an operator whose event is paused / resumed / pinned / unpinned or whose
trigger is manual / rollback), failures per day and rotations per secret per day for the
charts. Every query is bounded by ``since <= recorded_at < until`` (the ``recorded_at``
index) and aggregates in PostgreSQL, so the report's cost follows the window, not the trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from service.audit.db import translated, where
from service.audit.tables import audit_events
from service.model import format_time

OUTCOMES = ("applied", "failed", "rejected", "unknown", "interrupted")
FAILURES = ("failed", "rejected", "unknown", "interrupted")
MANUAL_EVENTS = ("paused", "resumed", "pinned", "unpinned")
MANUAL_TRIGGERS = ("manual", "rollback")
MANUAL_LIMIT = 1000  # manual actions listed; more are counted


@dataclass(slots=True, kw_only=True)
class PairSummary:
    """One (target, secret) over the window."""

    target: str
    secret: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    last_success: datetime | None = None
    longest_outage: timedelta | None = None
    outage_open: bool = False  # the window ends inside that outage
    verification: dict[str, int] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        outage = self.longest_outage
        return {
            "target": self.target,
            "secret": self.secret,
            **self.counts,
            "last_success": format_time(self.last_success) if self.last_success else None,
            "longest_outage_seconds": round(outage.total_seconds(), 3) if outage is not None else None,
            "outage_open": self.outage_open,
            "verification": dict(sorted(self.verification.items())),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    since: datetime
    until: datetime
    targets: Sequence[str] = ()

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        c = audit_events.c
        chosen = [c.recorded_at >= self.since, c.recorded_at < self.until]
        return [*chosen, c.target.in_(list(self.targets))] if self.targets else chosen


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """What happened in the window, ready for JSON or HTML."""

    window: Window
    pairs: list[PairSummary]
    manual: list[dict[str, Any]]
    manual_total: int
    failures_per_day: list[tuple[str, int]]
    rotations_per_day: list[tuple[str, str, int, int]]  # secret, day, applied, not applied


def activity(engine: Engine, window: Window) -> Activity:
    """Every aggregate of the report, in one read-only snapshot."""
    with translated(f"read the audit trail for a report at {where(engine)}"), engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            pairs = _pairs(conn, window)
            _add_outages(conn, window, pairs)
            manual, total = _manual(conn, window)
            return Activity(
                window=window,
                pairs=[pairs[key] for key in sorted(pairs)],
                manual=manual,
                manual_total=total,
                failures_per_day=_failures_per_day(conn, window),
                rotations_per_day=_rotations_per_day(conn, window),
            )


def _pairs(conn: Connection, window: Window) -> dict[tuple[str, str], PairSummary]:
    c = audit_events.c
    query = (
        sa.select(c.target, c.secret, c.event, c.verification, sa.func.count(), sa.func.max(c.recorded_at))
        .where(*window.clauses(), c.event.in_(OUTCOMES))
        .group_by(c.target, c.secret, c.event, c.verification)
    )
    pairs: dict[tuple[str, str], PairSummary] = {}
    for target, secret, event, verification, count, latest in conn.execute(query):
        pair = pairs.setdefault((target, secret), PairSummary(target=target, secret=secret))
        pair.counts[event] += count
        if verification is not None:
            pair.verification[verification] = pair.verification.get(verification, 0) + count
        if event == "applied" and (pair.last_success is None or latest > pair.last_success):
            pair.last_success = latest
    return pairs


_OUTAGES = """
WITH o AS (
    SELECT target, secret, seq, recorded_at, event = 'applied' AS ok
    FROM audit_events
    WHERE recorded_at >= :since AND recorded_at < :until AND event IN :outcomes {targets}
), changes AS (
    SELECT target, secret, seq, recorded_at, ok,
           lag(ok) OVER (PARTITION BY target, secret ORDER BY seq) AS was_ok
    FROM o
), spans AS (
    SELECT target, secret, ok, recorded_at AS began,
           lead(recorded_at) OVER (PARTITION BY target, secret ORDER BY seq) AS ended
    FROM changes WHERE was_ok IS DISTINCT FROM ok
)
SELECT target, secret, max(coalesce(ended, :until) - began) AS longest, bool_or(ended IS NULL) AS open
FROM spans WHERE NOT ok GROUP BY target, secret
"""


def _add_outages(conn: Connection, window: Window, pairs: dict[tuple[str, str], PairSummary]) -> None:
    """The longest span from an outcome that was not applied to the next applied one (SQL window functions)."""
    text = sa.text(_OUTAGES.format(targets="AND target IN :targets" if window.targets else ""))
    text = text.bindparams(sa.bindparam("outcomes", expanding=True))
    params: dict[str, Any] = {"since": window.since, "until": window.until, "outcomes": [*FAILURES, "applied"]}
    if window.targets:
        text = text.bindparams(sa.bindparam("targets", expanding=True))
        params["targets"] = list(window.targets)
    for target, secret, longest, still_open in conn.execute(text, params):
        pair = pairs[(target, secret)]
        pair.longest_outage, pair.outage_open = longest, bool(still_open)


def _manual(conn: Connection, window: Window) -> tuple[list[dict[str, Any]], int]:
    c = audit_events.c
    manual = sa.and_(c.operator.is_not(None), sa.or_(c.event.in_(MANUAL_EVENTS), c.trigger.in_(MANUAL_TRIGGERS)))
    columns = (c.seq, c.recorded_at, c.target, c.secret, c.event, c.trigger, c.operator, c.reason)
    rows = conn.execute(sa.select(*columns).where(*window.clauses(), manual).order_by(c.seq).limit(MANUAL_LIMIT))
    listed = [{**row._asdict(), "recorded_at": format_time(row.recorded_at)} for row in rows]
    if len(listed) < MANUAL_LIMIT:
        return listed, len(listed)
    total = conn.execute(sa.select(sa.func.count()).where(*window.clauses(), manual)).scalar_one()
    return listed, int(total)


def _day(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")


def _failures_per_day(conn: Connection, window: Window) -> list[tuple[str, int]]:
    c = audit_events.c
    day = _day(c.recorded_at).label("day")
    query = sa.select(day, sa.func.count()).where(*window.clauses(), c.event.in_(FAILURES)).group_by(day)
    return sorted((str(d), int(n)) for d, n in conn.execute(query))


def _rotations_per_day(conn: Connection, window: Window) -> list[tuple[str, str, int, int]]:
    c = audit_events.c
    day = _day(c.recorded_at).label("day")
    applied = sa.func.count().filter(c.event == "applied")
    query = (
        sa.select(c.secret, day, applied, sa.func.count() - applied)
        .where(*window.clauses(), c.event.in_(OUTCOMES))
        .group_by(c.secret, day)
    )
    return sorted((str(s), str(d), int(a), int(f)) for s, d, a, f in conn.execute(query))
