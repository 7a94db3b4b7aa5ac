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


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed:
    outcome_error: AuditError | None
    save_error: RotatorError | None
    kept: bool  # the lease was still ours: the state was saved


Claim = tuple[RotationKey, datetime | None]  # a pair and the due time it is claimed for (None: any)
Granted = tuple[LeaseGrant | None, RotationState | None]


class GroupCommit:
    """Batched claims (with their state loads), loads, audit appends and closings over the ports."""

    def __init__(self, *, audit: AuditLog, state: StateStore, owner: str, lease_ttl: timedelta) -> None:
        self._audit = audit
        self._state = state
        self._owner = owner
        self._ttl = lease_ttl
        self._appends: Batcher[list[AuditEvent], list[AuditRecord]] = Batcher(self._flush_appends)
        self._claims: Batcher[Claim, Granted] = Batcher(self._flush_claims)
        self._loads: Batcher[RotationKey, RotationState | None] = Batcher(self._flush_loads)
        self._closes: Batcher[Closing, Closed] = Batcher(self._flush_closes)

    def append(self, events: list[AuditEvent]) -> list[AuditRecord]:
        """Append ``events`` (in order, in one transaction with others'); committed when this returns."""
        return self._appends(events)

    def claim(self, key: RotationKey, *, due_by: datetime | None) -> Granted:
        return self._claims((key, due_by))

    def load(self, key: RotationKey) -> RotationState | None:
        return self._loads(key)

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
        grants: dict[RotationKey, LeaseGrant] = {}
        for due_by in {due for _, due in items}:
            keys = [key for key, due in items if due == due_by]
            grants.update(self._state.claim(keys, owner=self._owner, ttl=self._ttl, due_by=due_by))
        states = self._state.load(list(grants)) if grants else {}
        return [(grants.get(key), states.get(key)) for key, _ in items]

    def _flush_loads(self, keys: list[RotationKey]) -> list[RotationState | None]:
        states = self._state.load(keys)
        return [states.get(key) for key in keys]

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
