"""``Rotator``: sweeps of rotations over the ports, and the one guard around each rotation.

A sweep claims its pairs' leases with their states a part at a time (one transaction per
part, just before the pool needs it), runs the steps of each pair, then closes the rotation:
the next run is decided once, the outcome event is appended in the batch that
saves the state, and the lease is released. Any error of any step, even a bug, becomes a
failed result, and a claimed lease is always closed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from service.controls import Holds, Pin
from service.engine.commit import Closing, GroupCommit, Ticket
from service.engine.concurrency import Pool
from service.engine.context import SweepScope
from service.engine.options import RotatorOptions
from service.engine.recovery import Recovery
from service.engine.steps import Attempt, RotationSteps
from service.errors import AuditError, RotatorError
from service.model import LeaseGrant, Outcome, RotationKey, RotationState, SecretSpec, Trigger
from service.ports import (
    AuditLog,
    CredentialSource,
    OperatorControls,
    RegistryVerifier,
    RotationListener,
    SecretStore,
    StateStore,
)
from service.rotation import Notice, RotationResult, SweepReport, SweepRequest, next_run_after, state_after

SKIPPED = "another replica holds it or already rotated it for this due time"
# Outcomes whose rotation appended no audit row: a sweep of only these reads no chain head
# (an idle worker's scheduled tick of an unchanged pair is then one query cheaper).
APPENDS_NOTHING = frozenset({Outcome.UNCHANGED, Outcome.SKIPPED, Outcome.PAUSED, Outcome.DEFERRED, Outcome.DRY_RUN})
PART_PER_THREAD = 2  # a sweep claims its pairs in parts of twice the pool's threads


class Rotator:
    """Runs sweeps of rotations over the ports; owns the pool that bounds concurrency."""

    def __init__(
        self,
        *,
        source: CredentialSource,
        stores: Callable[[str], SecretStore],
        audit: AuditLog,
        state: StateStore,
        verifier: RegistryVerifier,
        listener: RotationListener,
        options: RotatorOptions,
        clock: Callable[[], datetime],
        timer: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        controls: OperatorControls | None = None,
    ) -> None:
        self._audit = audit
        self._part = PART_PER_THREAD * options.max_concurrency
        self._controls = controls
        self._listener = listener
        self._options = options
        self._clock = clock
        self._timer = timer
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._pool = Pool(
            max_concurrency=options.max_concurrency,
            per_target=options.per_target_concurrency,
            target_limits=options.target_concurrency,
            on_shrunk=options.on_pool_shrunk,
        )
        self._commit = GroupCommit(audit=audit, state=state, owner=options.owner, lease_ttl=options.lease_ttl)
        self._steps = RotationSteps(
            source=source,
            stores=stores,
            verifier=verifier,
            commit=self._commit,
            pool=self._pool,
            listener=listener,
            options=options,
            timer=timer,
        )
        self._recovery = Recovery(
            audit=audit, commit=self._commit, pool=self._pool, listener=listener, actor=options.actor
        )

    # --- sweeps -----------------------------------------------------------------

    def sweep(self, request: SweepRequest) -> SweepReport:
        """Run every (target, secret) of the request concurrently and wait for all of them."""
        scope = SweepScope(request=request, now=self._clock())
        started = self._timer()
        work = request.pairs()
        keys = [key for _, key in work]
        holds = self._holds(keys)  # one query: DESIGN.md step 1, before any claim

        def prepare(positions: list[int]) -> dict[int, Ticket]:
            return dict(zip(positions, self._tickets(scope, holds, [keys[i] for i in positions]), strict=True))

        def run(index: int, ticket: Ticket) -> RotationResult:
            return self._held(scope, holds, *work[index], ticket)

        results = self._pool.map_by_target(keys, run, prepare=prepare, part=self._part)
        return self._report(scope, results, started)  # results in configuration order

    def _holds(self, keys: list[RotationKey]) -> Holds:
        return self._controls.holds(keys) if self._controls is not None and keys else Holds()

    def _tickets(self, scope: SweepScope, holds: Holds, keys: list[RotationKey]) -> list[Ticket]:
        """A part's tickets: a paused pair is not claimed; the others' leases and states in one transaction."""
        request = scope.request
        wanted = [i for i, key in enumerate(keys) if request.ignore_pause or holds.pause_of(key) is None]
        claimed = self._commit.tickets([keys[i] for i in wanted], claim=not request.dry_run, due_by=request.due_by)
        tickets = [PAUSED] * len(keys)
        for index, ticket in zip(wanted, claimed, strict=True):
            tickets[index] = ticket
        return tickets

    def _held(
        self, scope: SweepScope, holds: Holds, secret: SecretSpec, key: RotationKey, ticket: Ticket
    ) -> RotationResult:
        """A paused pair is reported without a claim, a Vault read or a write; a pinned one reads its version."""
        pause = holds.pause_of(key)
        if pause is not None and not scope.request.ignore_pause:
            result = scope.result(key, Outcome.PAUSED, message=pause.describe())
            self._listener.rotation_finished(result)
            return result
        if pause is not None:
            scope.overridden[key] = pause
        return self._rotate(scope, pinned(secret, holds.pin_of(key)), key, ticket)

    def recover(self, pairs: Mapping[RotationKey, SecretSpec], *, trigger: Trigger = Trigger.STARTUP) -> SweepReport:
        """Close open intents whose pair is free as ``interrupted`` and rotate those pairs again at once."""
        scope = SweepScope(request=SweepRequest(secrets=[], trigger=trigger, force=True), now=self._clock())
        started = self._timer()

        def resolve(keys: list[RotationKey]) -> dict[RotationKey, SecretSpec]:
            """The specs of those of ``keys`` still configured: a pinned pair at its pin, a paused one left out.

            Asked only about the pairs with open intents (usually none): a periodic pass over
            thousands of pairs costs one query, not a pause and pin lookup for every pair.
            """
            holds = self._holds(keys)
            return {
                key: pinned(pairs[key], holds.pin_of(key))
                for key in keys
                if key in pairs and holds.pause_of(key) is None
            }

        results = self._recovery.recover(scope, resolve, self._rotate)
        return self._report(scope, results, started)

    def close(self) -> None:
        self._pool.close()

    def _report(self, scope: SweepScope, results: list[RotationResult], started: float) -> SweepReport:
        head = None
        if not scope.request.dry_run and any(result.outcome not in APPENDS_NOTHING for result in results):
            try:
                head = self._audit.head()
            except AuditError as e:
                self._listener.audit_write_failed(e)
        report = SweepReport(
            run_id=scope.run_id,
            trigger=scope.request.trigger,
            results=results,
            head=head,
            duration_ms=int((self._timer() - started) * 1000),
        )
        self._listener.sweep_finished(report)
        return report

    # --- one rotation -------------------------------------------------------------

    def _rotate(self, scope: SweepScope, secret: SecretSpec, key: RotationKey, ticket: Ticket) -> RotationResult:
        started = self._timer()
        with self._listener.rotating(scope.run_id, key):
            result = self._guarded(scope, secret, key, ticket)
        result = replace(result, duration_ms=int((self._timer() - started) * 1000))
        self._listener.rotation_finished(result)
        return result

    def _guarded(self, scope: SweepScope, secret: SecretSpec, key: RotationKey, ticket: Ticket) -> RotationResult:
        """The one guard: run the steps from the claimed lease and state, close; every error becomes a failed result."""
        grant, state = ticket.grant, ticket.state
        try:
            if ticket.error is not None:
                raise ticket.error  # noqa: TRY301 (the claim of this pair's part failed: the guard reports it)
            if ticket.refused:
                return scope.result(key, Outcome.SKIPPED, message=SKIPPED)
            attempt = self._steps.run(scope, secret, key, state)
        except RotatorError as e:
            self._listener.noticed(Notice("rotation.error", "warning", key, {"error": e.code, "message": str(e)}))
            attempt = Attempt(scope.failure(key, e))
        except Exception as e:  # noqa: BLE001 (a bug must not leave the lease held or stop the sweep)
            self._listener.noticed(Notice("rotation.internal_error", "error", key, {"error": type(e).__name__}, e))
            attempt = Attempt(scope.failure(key, RotatorError(f"internal error: {type(e).__name__}")))
        result = replace(attempt.result, next_run_at=self._next_run(scope, secret, state, attempt))
        if grant is not None:
            self._close(scope, grant, state, result, attempt)
        return result

    def _next_run(
        self, scope: SweepScope, secret: SecretSpec, state: RotationState | None, attempt: Attempt
    ) -> datetime | None:
        """The one place the next run is computed: schedule, credential lease, failure backoff, or a window's end."""
        if attempt.result.outcome is Outcome.DEFERRED:
            return attempt.result.next_run_at
        scheduled = self._options.schedule_next(secret, scope.at) if self._options.schedule_next else None
        return next_run_after(
            attempt.result.outcome,
            scheduled=scheduled,
            credential=attempt.credential,
            failures_before=state.consecutive_failures if state else 0,
            now=scope.at,
            fraction=self._options.renew_fraction,
            backoff=self._options.failure_backoff,
            backoff_max=self._options.failure_backoff_max,
            spread=self._rng.random(),
        )

    def _close(
        self,
        scope: SweepScope,
        grant: LeaseGrant,
        state: RotationState | None,
        result: RotationResult,
        attempt: Attempt,
    ) -> None:
        """Append the outcome with the new state and release the lease, in one batch with other rotations'."""
        closed = self._commit.close(Closing(attempt.outcome, state_after(state, result, now=self._clock()), grant))
        if closed.outcome_error is not None:
            self._listener.audit_write_failed(closed.outcome_error)
            outcome = attempt.outcome
            fields = {
                "error": closed.outcome_error.code,
                "intent_seq": outcome.intent_seq if outcome else None,
                "event_type": str(outcome.event) if outcome else None,
                "note": "the intent stays open; reconciliation closes it as interrupted and rotates again",
            }
            self._listener.noticed(Notice("audit.outcome_not_written", "error", grant.key, fields))
        if closed.save_error is not None:
            fields = {"error": closed.save_error.code, "message": str(closed.save_error)}
            self._listener.noticed(Notice("rotation.state_not_saved", "error", grant.key, fields))
        elif not closed.kept:
            self._listener.noticed(Notice("rotation.lease_lost", "warning", grant.key, {"token": grant.token}))


PAUSED = Ticket(refused=True)  # never started: the pair is paused (``_held`` reports it)


def pinned(secret: SecretSpec, pin: Pin | None) -> SecretSpec:
    """``secret`` reading its pinned KV v2 version (after ``rotator rollback``), or as configured."""
    if pin is None or secret.source.kind != "kv2":
        return secret
    return replace(secret, source=replace(secret.source, version=pin.version))
