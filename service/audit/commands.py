"""Handlers of ``rotator audit ...`` and ``rotator db ...`` (read-only except ``db upgrade``).

Each returns the exit code: 0 fine, 1 a verification failed (or nothing found, or the
schema is behind), 2 a bad value. Database errors propagate as ``AuditError`` /
``AuditUnavailable`` for the command line to map (1 / 3).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import Engine

from service.anchors import Anchor, AnchorError, Signer, check_signatures
from service.audit import migrate, schema
from service.audit.compliance import Window, activity
from service.audit.compliance_render import render_html, report_document
from service.audit.grants import grants_sql
from service.audit.output import WRITERS, parse_columns
from service.audit.queries import (
    AuditFilter,
    event_or_run,
    head_seq,
    list_events,
    parse_anchor,
    parse_time,
    streamed,
)
from service.audit.verify import VerifyResult, verify_chain
from service.errors import SchemaNotCurrent
from service.model import ChainHead, EventType, format_time

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LIST_FORMATS, SHOW_FORMATS, EXPORT_FORMATS = ("table", "jsonl", "csv"), ("text", "json"), ("jsonl", "csv")
FOLLOW_POLL_SECONDS = 2.0
REPORT_FORMATS = ("html", "json")


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
    columns: str | None = None,
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
        names = parse_columns(columns)
        if limit < 1:
            raise UsageProblem(f"--limit must be at least 1, not {limit}")
    except ValueError as problem:
        return _usage(err, problem)
    rows = list_events(engine, chosen, limit=limit + 1)
    writer(rows[:limit], out, names)
    if len(rows) > limit:  # in the table itself; after JSON lines or CSV on stderr, so parsers never see it
        note = f"… more rows; raise --limit (now {limit}) or use export\n"
        (out if fmt == "table" else err or sys.stderr).write(note)
    return EXIT_OK


def audit_show(
    engine: Engine, *, ident: str, fmt: str, out: TextIO, err: TextIO | None = None, columns: str | None = None
) -> int:
    """``rotator audit show``: one event by sequence number, or every event of a run id."""
    try:
        writer = WRITERS[_format(fmt, SHOW_FORMATS)]
        names = parse_columns(columns)
    except ValueError as problem:
        return _usage(err, problem)
    rows = event_or_run(engine, ident.strip())
    if not rows:
        kind = "sequence number" if ident.strip().isdigit() else "run id"
        print(f"no audit event with {kind} {ident.strip()!r}", file=err or sys.stderr)
        return EXIT_FAILED
    writer(rows, out, names)
    return EXIT_OK


def audit_export(
    engine: Engine,
    *,
    fmt: str,
    since: str | None,
    until: str | None,
    out: TextIO,
    err: TextIO | None = None,
    secrets: Sequence[str] = (),
    targets: Sequence[str] = (),
    events: Sequence[str] = (),
    actors: Sequence[str] = (),
    runs: Sequence[str] = (),
    after_seq: int | None = None,
    follow: bool = False,
    poll_seconds: float = FOLLOW_POLL_SECONDS,
    stop: threading.Event | None = None,
) -> int:
    """``rotator audit export``: matching events oldest first, streamed; ``--follow`` tails new ones.

    Ends with ``exported N rows, last seq S`` on ``err``: pass S as ``--after-seq`` to resume.
    """
    try:
        chosen = _filter(
            secrets=secrets, targets=targets, events=events, actors=actors, runs=runs, since=since, until=until
        )
        writer = WRITERS[_format(fmt, EXPORT_FORMATS)]
        if follow and fmt != "jsonl":
            raise UsageProblem("--follow writes JSON lines only (--format jsonl)")
        _check_cursor(engine, after_seq)
    except ValueError as problem:
        return _usage(err, problem)
    cursor = ExportCursor(after_seq or 0)
    try:
        with _stopping_on_signals(stop if stop is not None else threading.Event(), enabled=follow) as stopping:
            while True:
                with streamed(engine, replace(chosen, after_seq=cursor.last_seq)) as rows:
                    writer(cursor.track(rows), out)
                out.flush()
                if not follow or stopping.wait(poll_seconds):
                    break
    finally:  # also when the database goes away mid-feed: the shipper can resume from here
        print(f"exported {cursor.count} rows, last seq {cursor.last_seq}", file=err or sys.stderr)
    return EXIT_OK


class ExportCursor:
    """Counts the rows an export wrote and remembers the last seq: the resumable cursor."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq
        self.count = 0

    def track(self, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            yield row
            self.last_seq, self.count = row["seq"], self.count + 1


def _check_cursor(engine: Engine, after_seq: int | None) -> None:
    if after_seq is None:
        return
    if after_seq < 0:
        raise UsageProblem(f"--after-seq must be 0 or more, not {after_seq}")
    head = head_seq(engine)
    if after_seq > head:
        raise UsageProblem(f"--after-seq {after_seq} is beyond the chain head (seq {head}): no such row was written")


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[threading.Event]:
    """While following: SIGTERM and SIGINT set ``stop`` (the current batch is finished first)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def audit_verify(
    engine: Engine,
    *,
    anchor: str | None,
    out: TextIO,
    err: TextIO | None = None,
    as_json: bool = False,
    anchors: Sequence[tuple[str, Anchor]] | None = None,
    anchors_from: str = "",
    signer: Signer | None = None,
) -> int:
    """``rotator audit verify``: check the signed anchors, recompute the chain; exit 1 naming the first problem."""
    try:
        expected = parse_anchor(anchor) if anchor else None
    except ValueError as problem:
        return _usage(err, problem)
    try:
        if anchors is not None:
            check_signatures(anchors, signer=signer, where=anchors_from)
    except AnchorError as refused:
        return _refused(refused, out=out, as_json=as_json)
    heads = [signed.head for _, signed in anchors or ()]
    result = verify_chain(engine, anchor=expected, anchors=heads)
    heads += [expected] if expected else []
    if as_json:
        out.write(json.dumps(verify_document(result, anchors=heads)) + "\n")
        return EXIT_OK if result.ok else EXIT_FAILED
    head = str(result.head) if result.head else "none (empty trail)"
    if result.problem is None:
        anchored = f"; anchor {expected} confirmed" if expected else ""
        if anchors:
            newest = max(heads, key=lambda h: h.seq)
            anchored += f"; {len(anchors)} signed anchors hold (newest {newest})"
        out.write(f"ok: {result.rows_checked} rows checked; head {head}{anchored}\n")
        return EXIT_OK
    out.write(f"FAILED: {result.rows_checked} rows checked before the first problem; last good row {head}\n")
    out.write(f"first bad row: seq {result.problem.seq}: {result.problem.kind}: {result.problem.detail}\n")
    return EXIT_FAILED


def _refused(refused: AnchorError, *, out: TextIO, as_json: bool) -> int:
    """An anchor that cannot be trusted: the chain is not walked; exit 1."""
    if as_json:
        problem = {"seq": None, "kind": "anchor_invalid", "detail": str(refused)}
        document = {"ok": False, "rows_checked": 0, "head": None, "anchors_checked": 0, "problem": problem}
        out.write(json.dumps({**document, "newest_anchor": None}) + "\n")
    else:
        out.write(f"FAILED: anchor refused: {refused}\n")
    return EXIT_FAILED


def verify_document(result: VerifyResult, *, anchors: Sequence[ChainHead]) -> dict[str, Any]:
    """``verify --json``: one object a script can read (field names are stable)."""
    problem = result.problem
    return {
        "ok": result.ok,
        "rows_checked": result.rows_checked,
        "head": _head_json(result.head),
        "anchors_checked": len(anchors),
        "newest_anchor": _head_json(max(anchors, key=lambda a: a.seq)) if anchors else None,
        "problem": None
        if problem is None
        else {"seq": problem.seq, "kind": str(problem.kind), "detail": problem.detail},
    }


def _head_json(head: ChainHead | None) -> dict[str, Any] | None:
    return None if head is None else {"seq": head.seq, "row_hash": head.row_hash}


def audit_report(
    engine: Engine,
    *,
    since: str,
    until: str | None,
    targets: Sequence[str],
    fmt: str,
    output: Path,
    out: TextIO,
    verify: bool = True,
    anchors: Sequence[tuple[str, Anchor]] | None = None,
    anchors_from: str = "",
    signer: Signer | None = None,
    err: TextIO | None = None,
) -> int:
    """``rotator audit report``: the compliance report of a window, as HTML or JSON; exit 1 if the chain is broken."""
    now = datetime.now(UTC)
    try:
        writer = {"html": render_html, "json": _json_text}[_format(fmt, REPORT_FORMATS)]
        window = Window(since=parse_time(since, now=now), until=_time(until, now) or now, targets=targets)
        if window.since >= window.until:
            raise UsageProblem(f"--since {since!r} is not before --until ({format_time(window.until)})")
    except ValueError as problem:
        return _usage(err, problem)
    chain = _chain_result(engine, verify=verify, anchors=anchors, anchors_from=anchors_from, signer=signer)
    newest = max((signed for _, signed in anchors or ()), key=lambda a: a.seq, default=None)
    found = activity(engine, window)
    document = report_document(found, chain=chain, last_anchor=newest.document() if newest else None, generated_at=now)
    try:
        output.write_text(writer(document), encoding="utf-8")
    except OSError as e:
        return _usage(err, UsageProblem(f"cannot write the report to {output}: {e.strerror}"))
    state = "not verified" if chain is None else "intact" if chain["ok"] else "BROKEN"
    out.write(f"wrote {output}: {len(found.pairs)} (target, secret) pairs, chain {state}\n")
    return EXIT_OK if chain is None or chain["ok"] else EXIT_FAILED


def _json_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _chain_result(
    engine: Engine,
    *,
    verify: bool,
    anchors: Sequence[tuple[str, Anchor]] | None,
    anchors_from: str,
    signer: Signer | None,
) -> dict[str, Any] | None:
    if not verify:
        return None
    try:
        if anchors is not None:
            check_signatures(anchors, signer=signer, where=anchors_from)
    except AnchorError as refused:
        problem = {"seq": None, "kind": "anchor_invalid", "detail": str(refused)}
        return {
            "ok": False,
            "rows_checked": 0,
            "head": None,
            "anchors_checked": 0,
            "newest_anchor": None,
            "problem": problem,
        }
    heads = [signed.head for _, signed in anchors or ()]
    return verify_document(verify_chain(engine, anchors=heads), anchors=heads)


def db_upgrade(engine: Engine, out: TextIO) -> int:
    """``rotator db upgrade``: apply migrations up to head."""
    before = schema.current(engine)
    migrate.upgrade(engine)
    after = schema.current(engine)
    if before == after:
        out.write(f"schema already at head {after}\n")
    else:
        out.write(f"schema upgraded from {before or 'empty'} to {after}\n")
    return EXIT_OK


def db_current(engine: Engine, out: TextIO) -> int:
    """``rotator db current``: the revision and whether it is head (exit 1 when not)."""
    try:
        at = schema.require_head(engine)
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
