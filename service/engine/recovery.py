"""Open intents of free pairs: closed as ``interrupted``, and the pair rotated again at once.

An intent is open when no row names it: its process died between intent and outcome, or
could not write the outcome. Its pair is free when the lease holder's instance lock is
gone, the lease was released, or it expired. Every live worker runs this periodically, not
only at start-up; each pass reads only intents after the last seq it saw settled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from service.engine.commit import GroupCommit, Ticket
from service.engine.concurrency import Pool
from service.engine.context import SweepScope
from service.errors import RotatorError
from service.model import AuditEvent, AuditRecord, EventType, Outcome, RotationKey, SecretSpec
from service.ports import AuditLog, RotationListener
from service.rotation import Notice, RotationResult

Rotate = Callable[[SweepScope, SecretSpec, RotationKey, Ticket], RotationResult]
Resolve = Callable[[list[RotationKey]], Mapping[RotationKey, SecretSpec]]  # a pair left out is not rotated again


class Recovery:
    """Finds open intents, claims their pairs, closes them and hands the pairs back to be rotated."""

    def __init__(
        self, *, audit: AuditLog, commit: GroupCommit, pool: Pool, listener: RotationListener, actor: str
    ) -> None:
        self._audit = audit
        self._commit = commit
        self._pool = pool
        self._listener = listener
        self._actor = actor
        self._settled_through = 0  # every intent up to this seq has an outcome

    def recover(self, scope: SweepScope, resolve: Resolve, rotate: Rotate) -> list[RotationResult]:
        """One pass: every free pair with open intents is closed and rotated again; held ones wait for the next.

        ``resolve`` gives the specs to rotate them again with, asked only about pairs with open intents.
        """
        head = self._audit.head()
        open_by_pair: dict[RotationKey, list[AuditRecord]] = {}
        for record in self._audit.open_intents(after=self._settled_through):
            open_by_pair.setdefault(RotationKey(record.event.target, record.event.secret), []).append(record)
        specs = resolve(list(open_by_pair)) if open_by_pair else {}
        futures = {
            key: self._pool.submit(lambda k=key, r=records: self._one(scope, r, specs.get(k), rotate))  # type: ignore[misc]
            for key, records in open_by_pair.items()
        }
        outcomes = {key: future.result() for key, future in futures.items()}
        still_open = [open_by_pair[key][0].seq for key, (closed, _) in outcomes.items() if not closed]
        reached = head.seq if head is not None else 0
        self._settled_through = max(self._settled_through, min([reached, *(seq - 1 for seq in still_open)]))
        return [result for _, result in outcomes.values() if result is not None]

    def _one(
        self, scope: SweepScope, records: list[AuditRecord], secret: SecretSpec | None, rotate: Rotate
    ) -> tuple[bool, RotationResult | None]:
        """Close every open intent of one pair if its lease is free; (closed, result of rotating it again)."""
        key = RotationKey(records[-1].event.target, records[-1].event.secret)
        with self._listener.rotating(scope.run_id, key):
            try:
                grant, state = self._commit.claim(key, due_by=None)
                if grant is None:
                    return False, None  # its owner is alive and holds it: the intent is not orphaned
                records = self._still_open(records)
                if not records:  # its owner closed it between our read and our claim
                    self._commit.release([grant])
                    return True, None
                try:
                    self._commit.append([self._interrupted(scope, record) for record in records])
                except RotatorError:
                    self._commit.release([grant])
                    raise
                self._listener.noticed(
                    Notice("rotation.interrupted", "warning", key, {"intent_seq": [r.seq for r in records]})
                )
            except RotatorError as e:
                return False, scope.failure(key, e)  # still open: the next pass tries again
        if secret is None or key.target not in secret.targets:
            self._commit.release([grant])
            return True, scope.result(key, Outcome.INTERRUPTED, message="no longer configured; not rotated again")
        return True, rotate(scope, secret, key, Ticket(grant, state))

    def _still_open(self, records: list[AuditRecord]) -> list[AuditRecord]:
        """Those of ``records`` no outcome names yet, read again while we hold the pair's lease.

        The owner appends the outcome before it releases the lease, so once the lease is ours
        no outcome can arrive for these intents: an intent closed in between is left alone.
        """
        still = {record.seq for record in self._audit.open_intents(after=records[0].seq - 1)}
        return [record for record in records if record.seq in still]

    def _interrupted(self, scope: SweepScope, record: AuditRecord) -> AuditEvent:
        return replace(
            record.event,
            event=EventType.INTERRUPTED,
            run_id=scope.run_id,
            trigger=scope.request.trigger,
            actor=self._actor,
            intent_seq=record.seq,
            message="no outcome was recorded (the process stopped, or could not write it); rotating again",
            http_status=None,
            aicore_request_id=None,
            error_code="interrupted",
            aicore_error_code=None,
            duration_ms=None,
            operator=None,
            reason=None,
        )
