"""The invariants checked after every fault case, each a pure function of what the case left behind.

- ``no_write_without_intent``: every PATCH / POST the emulator received for a pair arrived
  after an intent of that pair was committed, and before that intent's outcome.
- ``intents_resolved``: no intent is left open, and each closed within one lease TTL
  (plus the case's declared outage, during which nothing can be written).
- ``written_once``: at most one outcome per intent; one value per intent (the retries of
  one PATCH after a timeout may each land: they carry the same body, and a PATCH sets the
  whole value); and never two intents of one pair open at once while both owners live
  (two replicas on the same change; an intent later closed as ``interrupted`` had a dead owner).
- ``no_sentinel``: no credential appears in any text collected from the processes.

``audit verify`` is a ``rotator`` command the scene runs.
"""

from __future__ import annotations

import base64
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tests.faults.emulator import Logged

OUTCOMES = ("applied", "failed", "unknown", "interrupted", "rejected", "missing")
PAUSE_DRAIN = 2.0  # seconds after SIGCONT in which the emulator still handles requests the kernel held


@dataclass(frozen=True)
class Row:
    """The columns of one audit row the invariants need."""

    seq: int
    at: float  # recorded_at as POSIX seconds
    event: str
    target: str
    secret: str
    intent_seq: int | None
    actor: str = ""
    error_code: str | None = None

    def __str__(self) -> str:
        closes = f" closes {self.intent_seq}" if self.intent_seq is not None else ""
        code = f" [{self.error_code}]" if self.error_code else ""
        return f"{self.seq} {self.at:.3f} {self.event}{closes}{code} {self.target}/{self.secret} by {self.actor}"


@dataclass(frozen=True)
class Intent:
    row: Row
    closed_by: Row | None


def as_row(mapping: Mapping[str, object]) -> Row:
    recorded = mapping["recorded_at"]
    assert isinstance(recorded, datetime)
    intent_seq = mapping["intent_seq"]
    return Row(
        seq=int(str(mapping["seq"])),
        at=recorded.timestamp(),
        event=str(mapping["event"]),
        target=str(mapping["target"]),
        secret=str(mapping["secret"]),
        intent_seq=None if intent_seq is None else int(str(intent_seq)),
        actor=str(mapping.get("actor", "")),
        error_code=None if mapping.get("error_code") is None else str(mapping.get("error_code")),
    )


def intents(rows: Sequence[Row]) -> list[Intent]:
    """Every intent with the outcome row that closes it (None while open)."""
    closing = {row.intent_seq: row for row in rows if row.intent_seq is not None and row.event in OUTCOMES}
    return [Intent(row, closing.get(row.seq)) for row in rows if row.event == "intent"]


def no_write_without_intent(
    rows: Sequence[Row],
    requests: Iterable[Logged],
    tenants_of: Mapping[str, set[str]],
    *,
    paused: Sequence[tuple[float, float]] = (),
) -> list[str]:
    """Problems: writes that arrived with no open, committed intent of their pair.

    ``paused`` are (from, until) windows in which the emulator process was stopped: a
    request it handled just after one may have been sent any time since it began (the
    kernel held it), so its intent only has to be open at the window's start.
    """
    by_pair: dict[tuple[str, str], list[Intent]] = defaultdict(list)
    for intent in intents(rows):
        for tenant in tenants_of.get(intent.row.target, {intent.row.target}):
            by_pair[(tenant, intent.row.secret)].append(intent)
    problems = []
    for request in requests:
        if not request.is_write or request.name is None:
            continue
        before = [i for i in by_pair[(request.tenant, request.name)] if i.row.at <= request.at]
        latest = before[-1] if before else None
        if latest is None:
            problems.append(f"{request.method} {request.tenant}/{request.name} #{request.number}: no intent before it")
        elif latest.closed_by is not None and latest.closed_by.at < _sent_by(request, paused):
            problems.append(
                f"{request.method} {request.tenant}/{request.name} #{request.number}: "
                f"its intent {latest.row.seq} was already closed ({latest.closed_by.event})"
            )
    return problems


def _sent_by(request: Logged, paused: Sequence[tuple[float, float]]) -> float:
    """The earliest the request may have been sent: its arrival, or the start of a pause it waited out."""
    for start, end in paused:
        if start <= request.at <= end + PAUSE_DRAIN:
            return start
    return request.at


def intents_resolved(rows: Sequence[Row], *, within: float) -> tuple[list[str], float]:
    """Problems (open intents, slow ones) and the longest time from an intent to its outcome."""
    problems, longest = [], 0.0
    for intent in intents(rows):
        if intent.closed_by is None:
            problems.append(f"intent {intent.row.seq} ({intent.row.target}/{intent.row.secret}) is still open")
            continue
        took = intent.closed_by.at - intent.row.at
        longest = max(longest, took)
        if took > within:
            problems.append(f"intent {intent.row.seq} took {took:.1f}s to close (bound {within:.0f}s)")
    return problems, longest


def written_once(rows: Sequence[Row], requests: Sequence[Logged], tenants_of: Mapping[str, set[str]]) -> list[str]:
    """Problems: an intent with two outcomes or two accepted writes, or overlapping intents of one pair."""
    problems = []
    outcomes: dict[int, int] = defaultdict(int)
    for row in rows:
        if row.intent_seq is not None and row.event in OUTCOMES:
            outcomes[row.intent_seq] += 1
    problems += [f"intent {seq} has {n} outcomes" for seq, n in outcomes.items() if n > 1]
    by_pair: dict[tuple[str, str], list[Intent]] = defaultdict(list)
    for intent in intents(rows):
        by_pair[(intent.row.target, intent.row.secret)].append(intent)
    for (target, secret), pair_intents in by_pair.items():
        for earlier, later in itertools.pairwise(pair_intents):
            # An open intent is ``resolved``'s problem; one closed as interrupted had a dead owner.
            closed = earlier.closed_by
            if closed is not None and closed.event != "interrupted" and closed.at > later.row.at:
                problems.append(f"{target}/{secret}: intents {earlier.row.seq} and {later.row.seq} overlap")
        tenants = tenants_of.get(target, {target})
        accepted = [r for r in requests if r.is_write and r.name == secret and r.tenant in tenants and r.status < 300]
        for index, intent in enumerate(pair_intents):
            end = pair_intents[index + 1].row.at if index + 1 < len(pair_intents) else float("inf")
            bodies = {r.body_sha256 for r in accepted if intent.row.at <= r.at < end}
            if len(bodies) > 1:
                problems.append(
                    f"{target}/{secret}: {len(bodies)} different values written for intent {intent.row.seq}"
                )
    return problems


def leak_forms(values: Iterable[tuple[str, str]]) -> set[str]:
    """Each (username, password) as it could leak: the password, and the base64 ``auth`` of the pair."""
    forms = set()
    for username, password in values:
        forms.add(password)
        forms.add(base64.b64encode(f"{username}:{password}".encode()).decode())
    return forms


def no_sentinel(texts: Mapping[str, str], sentinels: Iterable[str]) -> list[str]:
    """Problems: where a sentinel value was found (the place, never the value)."""
    wanted = [s for s in sentinels if s]
    return [f"a credential appears in {place}" for place, text in texts.items() if any(s in text for s in wanted)]
