"""Group commit: concurrent rotations share their database round trips.

Four batchers, one per kind of write or read. While one batch is in flight, the next one
gathers every caller that arrives, so a thousand rotations make a few dozen transactions
instead of a thousand (bench/sweep.py). Each step of a closing fails on its own: an outcome
that cannot be appended never keeps the state from being saved and the lease released.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.batching import Batcher
from service.errors import AuditError, RotatorError
from service.model import AuditEvent, AuditRecord, LeaseGrant, RotationKey, RotationState
from service.ports import AuditLog, StateStore


@dataclass(frozen=True, slots=True)
class Closing:
    """The end of one rotation: its outcome event (if it wrote), its new state, its lease."""

    outcome: AuditEvent | None
    state: RotationState
    grant: LeaseGrant


@dataclass(frozen=True, slots=True)
class Ticket:
    """What one rotation starts from: its lease and state, or why it does not start."""

    grant: LeaseGrant | None = None  # None: not claimed (a dry run), or refused
    state: RotationState | None = None
    refused: bool = False  # another replica holds the lease, or already rotated it for this due time
    error: Exception | None = None  # the claim (or load) of the ticket's part failed


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed:
    outcome_error: AuditError | None
    save_error: RotatorError | None
    kept: bool  # the lease was still ours: the state was saved


Claim = tuple[RotationKey, datetime | None]  # a pair and the due time it is claimed for (None: any)
Granted = tuple[LeaseGrant | None, RotationState | None]


class GroupCommit:
    """Claims of a sweep's parts, and batched claims, audit appends and closings of concurrent rotations."""

    def __init__(self, *, audit: AuditLog, state: StateStore, owner: str, lease_ttl: timedelta) -> None:
        self._audit = audit
        self._state = state
        self._owner = owner
        self._ttl = lease_ttl
        self._appends: Batcher[list[AuditEvent], list[AuditRecord]] = Batcher(self._flush_appends)
        self._claims: Batcher[Claim, Granted] = Batcher(self._flush_claims)
        self._closes: Batcher[Closing, Closed] = Batcher(self._flush_closes)

    def append(self, events: list[AuditEvent]) -> list[AuditRecord]:
        """Append ``events`` (in order, in one transaction with others'); committed when this returns."""
        return self._appends(events)

    def claim(self, key: RotationKey, *, due_by: datetime | None) -> Granted:
        return self._claims((key, due_by))

    def tickets(self, keys: Sequence[RotationKey], *, claim: bool, due_by: datetime | None) -> list[Ticket]:
        """One ticket per key, in order: every lease claimed and every state loaded in one transaction.

        Without ``claim`` (a dry run) the states are only loaded. A key named twice gets its
        grant once; later ones are refused. A failure is handed to every key's ticket.
        """
        try:
            if not claim:
                states = self._state.load(keys)
                return [Ticket(state=states.get(key)) for key in keys]
            granted = self._state.claim_loaded(keys, owner=self._owner, ttl=self._ttl, due_by=due_by)
        except Exception as e:  # noqa: BLE001 (each rotation's guard raises it again and reports it)
            return [Ticket(error=e) for key in keys]
        out = []
        for key in keys:
            grant, state = granted.pop(key, (None, None))
            out.append(Ticket(grant, state) if grant is not None else Ticket(refused=True))
        return out

    def close(self, closing: Closing) -> Closed:
        return self._closes(closing)

    def release(self, grants: Sequence[LeaseGrant]) -> None:
        self._state.release(grants)

    # --- flushes ------------------------------------------------------------------

    def _flush_appends(self, batches: list[list[AuditEvent]]) -> list[list[AuditRecord]]:
        records = self._audit.append([event for batch in batches for event in batch])
        out, at = [], 0
        for batch in batches:
            out.append(records[at : at + len(batch)])
            at += len(batch)
        return out

    def _flush_claims(self, items: list[Claim]) -> list[Granted]:
        """One claim (its grants and their states in one transaction) per due time among the batch."""
        granted: dict[RotationKey, tuple[LeaseGrant, RotationState | None]] = {}
        for due_by in {due for _, due in items}:
            keys = [key for key, due in items if due == due_by]
            granted.update(self._state.claim_loaded(keys, owner=self._owner, ttl=self._ttl, due_by=due_by))
        return [granted.get(key, (None, None)) for key, _ in items]

    def _flush_closes(self, items: list[Closing]) -> list[Closed]:
        """Append the outcomes, then save the states and release the leases: each step fails on its own."""
        events = [item.outcome for item in items if item.outcome is not None]
        outcome_error = save_error = None
        try:
            if events:
                self._audit.append(events)
        except AuditError as e:
            outcome_error = e
        try:
            unwritten = set(self._state.save([item.state for item in items], release=[i.grant for i in items]))
        except RotatorError as e:
            save_error, unwritten = e, set()
        return [
            Closed(
                outcome_error=outcome_error if item.outcome is not None else None,
                save_error=save_error,
                kept=item.grant.key not in unwritten,
            )
            for item in items
        ]
