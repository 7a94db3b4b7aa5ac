"""Handlers of ``rotator audit ...`` and ``rotator db ...`` (read-only except ``db upgrade``).

Each returns the exit code: 0 fine, 1 a verification failed (or nothing found, or the
schema is behind), 2 a bad value. Database errors propagate as ``AuditError`` /
``AuditUnavailable`` for the command line to map (1 / 3).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy.engine import Engine

from service.audit import migrate
from service.audit.grants import grants_sql
from service.audit.output import WRITERS
from service.audit.queries import AuditFilter, event_or_run, list_events, parse_anchor, parse_time, streamed
from service.audit.verify import verify_chain
from service.errors import SchemaNotCurrent
from service.model import EventType

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LIST_FORMATS, SHOW_FORMATS, EXPORT_FORMATS = ("table", "jsonl", "csv"), ("text", "json"), ("jsonl", "csv")


class UsageProblem(ValueError):
    """A bad option value: printed, exit code 2."""


def _usage(err: TextIO | None, problem: Exception) -> int:
    print(f"error: {problem}", file=err or sys.stderr)
    return EXIT_USAGE


def _time(text: str | None, now: datetime) -> datetime | None:
    return parse_time(text, now=now) if text else None


def _format(fmt: str, allowed: Sequence[str]) -> str:
    if fmt not in allowed:
        raise UsageProblem(f"unknown format {fmt!r} (one of {', '.join(allowed)})")
    return fmt


def _filter(
    *,
    secrets: Sequence[str],
    targets: Sequence[str],
    events: Sequence[str],
    actors: Sequence[str],
    runs: Sequence[str],
    since: str | None,
    until: str | None,
    operators: Sequence[str] = (),
) -> AuditFilter:
    unknown = sorted(set(events) - {event.value for event in EventType})
    if unknown:
        known = ", ".join(event.value for event in EventType)
        raise UsageProblem(f"unknown event {', '.join(map(repr, unknown))} (one of {known})")
    now = datetime.now(UTC)
    return AuditFilter(
        secrets=secrets,
        targets=targets,
        events=events,
        actors=actors,
        runs=runs,
        operators=operators,
        since=_time(since, now),
        until=_time(until, now),
    )


def audit_list(
    engine: Engine,
    *,
    secrets: Sequence[str],
    targets: Sequence[str],
    events: Sequence[str],
    actors: Sequence[str],
    runs: Sequence[str],
    since: str | None,
    until: str | None,
    limit: int,
    fmt: str,
    out: TextIO,
    err: TextIO | None = None,
    operators: Sequence[str] = (),
) -> int:
    """``rotator audit list``: matching events, newest first, as a table, JSON lines or CSV."""
    try:
        chosen = _filter(
            secrets=secrets,
            targets=targets,
            events=events,
            actors=actors,
            runs=runs,
            since=since,
            until=until,
            operators=operators,
        )
        writer = WRITERS[_format(fmt, LIST_FORMATS)]
        if limit < 1:
            raise UsageProblem(f"--limit must be at least 1, not {limit}")
    except ValueError as problem:
        return _usage(err, problem)
    writer(list_events(engine, chosen, limit=limit), out)
    return EXIT_OK


def audit_show(engine: Engine, *, ident: str, fmt: str, out: TextIO, err: TextIO | None = None) -> int:
    """``rotator audit show``: one event by sequence number, or every event of a run id."""
    try:
        writer = WRITERS[_format(fmt, SHOW_FORMATS)]
    except ValueError as problem:
        return _usage(err, problem)
    rows = event_or_run(engine, ident.strip())
    if not rows:
        kind = "sequence number" if ident.strip().isdigit() else "run id"
        print(f"no audit event with {kind} {ident.strip()!r}", file=err or sys.stderr)
        return EXIT_FAILED
    writer(rows, out)
    return EXIT_OK


def audit_export(
    engine: Engine, *, fmt: str, since: str | None, until: str | None, out: TextIO, err: TextIO | None = None
) -> int:
    """``rotator audit export``: the whole trail (or a time range), oldest first, streamed."""
    try:
        chosen = _filter(secrets=(), targets=(), events=(), actors=(), runs=(), since=since, until=until)
        writer = WRITERS[_format(fmt, EXPORT_FORMATS)]
    except ValueError as problem:
        return _usage(err, problem)
    with streamed(engine, chosen) as rows:
        writer(rows, out)
    return EXIT_OK


def audit_verify(engine: Engine, *, anchor: str | None, out: TextIO, err: TextIO | None = None) -> int:
    """``rotator audit verify``: recompute the chain; exit 1 naming the first bad row."""
    try:
        expected = parse_anchor(anchor) if anchor else None
    except ValueError as problem:
        return _usage(err, problem)
    result = verify_chain(engine, anchor=expected)
    head = str(result.head) if result.head else "none (empty trail)"
    if result.problem is None:
        anchored = f"; anchor {expected} confirmed" if expected else ""
        out.write(f"ok: {result.rows_checked} rows checked; head {head}{anchored}\n")
        return EXIT_OK
    out.write(f"FAILED: {result.rows_checked} rows checked before the first problem; last good row {head}\n")
    out.write(f"first bad row: seq {result.problem.seq}: {result.problem.kind}: {result.problem.detail}\n")
    return EXIT_FAILED


def db_upgrade(engine: Engine, out: TextIO) -> int:
    """``rotator db upgrade``: apply migrations up to head."""
    before = migrate.current(engine)
    migrate.upgrade(engine)
    after = migrate.current(engine)
    if before == after:
        out.write(f"schema already at head {after}\n")
    else:
        out.write(f"schema upgraded from {before or 'empty'} to {after}\n")
    return EXIT_OK


def db_current(engine: Engine, out: TextIO) -> int:
    """``rotator db current``: the revision and whether it is head (exit 1 when not)."""
    try:
        at = migrate.require_head(engine)
    except SchemaNotCurrent as behind:
        out.write(f"{behind}\n")
        return EXIT_FAILED
    out.write(f"revision {at} (head)\n")
    return EXIT_OK


def db_grants(*, app_role: str, reader_role: str, out: TextIO, err: TextIO | None = None) -> int:
    """``rotator db grants``: print the least-privilege SQL for the two roles."""
    try:
        out.write(grants_sql(app_role=app_role, reader_role=reader_role))
    except ValueError as problem:
        return _usage(err, problem)
    return EXIT_OK
