"""The rotation use case, part two: a sweep runs rotations over the ports.

One rotation follows DESIGN.md step by step: claim the lease, read the source (once per
sweep), render, fingerprint, compare with the state, verify, append the intent and
commit it, PATCH, append the outcome, save the state and release the lease. Rotations
run concurrently (bounded in total and per target); their database writes are batched
by ``Batcher`` so a thousand rotations do not become a thousand serial transactions.
No adapter library is imported here.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from service import logs
from service.batching import Batcher
from service.config import SecretConfig
from service.controls import Holds, Pause, Pin
from service.dockerconfig import registry_hosts, render
from service.errors import AICoreError, AuditError, OutcomeUnknown, RotatorError, SecretNotFound
from service.model import (
    AuditEvent,
    AuditRecord,
    ChainHead,
    DockerConfigJson,
    EventType,
    LeaseGrant,
    Outcome,
    RegistryCredential,
    RotationKey,
    RotationState,
    Trigger,
    VerificationResult,
    WriteReceipt,
)
from service.ports import (
    AuditLog,
    CredentialSource,
    OperatorControls,
    RegistryVerifier,
    RotationListener,
    SecretStore,
    StateStore,
)
from service.rotation import (
    Action,
    AuditKeys,
    EventContext,
    RotationResult,
    confirm_due,
    decide_rendering,
    next_run,
    retry_delay,
    state_after,
    verification_allows,
)

if TYPE_CHECKING:
    from service.windows import Block

log = logs.get_logger("rotator.sweep")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepRequest:
    secrets: Sequence[SecretConfig]
    trigger: Trigger = Trigger.SCHEDULE
    targets: frozenset[str] | None = None
    force: bool = False
    dry_run: bool = False
    due_by: datetime | None = None  # scheduled sweeps: skip what another replica already did
    recheck: bool = False  # verify credentials already applied against their registry again
    operator: str | None = None  # manual sweeps: the person who asked (audited beside the actor)
    reason: str | None = None
    ignore_pause: bool = False  # `once --force --ignore-pause`: rotate paused pairs too


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepReport:
    run_id: str
    trigger: Trigger
    results: list[RotationResult]
    head: ChainHead | None
    duration_ms: int

    @property
    def failed(self) -> list[RotationResult]:
        return [result for result in self.results if result.failed]

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for result in self.results:
            totals[result.outcome] = totals.get(result.outcome, 0) + 1
        return totals


@dataclass(frozen=True, slots=True, kw_only=True)
class RotatorOptions:
    audit_key: bytes = field(repr=False)
    audit_key_id: str
    # Keys used before audit_key, by key id: a credential applied under one is not rewritten.
    previous_audit_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    actor: str  # who writes: "rotator/<version>@<instance>"
    owner: str  # lease owner: this process
    lease_ttl: timedelta
    max_concurrency: int
    per_target_concurrency: int
    target_concurrency: Mapping[str, int] = field(default_factory=dict)
    renew_fraction: float = 0.67
    failure_backoff: timedelta = timedelta(seconds=30)
    failure_backoff_max: timedelta = timedelta(hours=1)
    schedule_next: Callable[[SecretConfig, datetime], datetime] | None = None
    # The schedule's period: an unchanged secret is looked up in AI Core once per period (drift).
    # None: never (unit tests that count calls).
    confirm_every: Callable[[SecretConfig, datetime], timedelta] | None = None
    # Deny / allow windows: what holds the secret's writes at a time (service.windows.blocked), if anything.
    window_block: Callable[[SecretConfig, datetime], Block | None] | None = None


class _Once(Generic[K, V]):
    """Computes each key once; concurrent callers of the same key wait for the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[K, Future[V]] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as e:  # noqa: BLE001 (re-raised in every caller below)
                future.set_exception(e)
        return future.result()


@dataclass(slots=True)
class _Scope:
    """One sweep: its request, run id, time, and what it read once for all its rotations."""

    request: SweepRequest
    run_id: str
    now: datetime
    sources: _Once[Hashable, RegistryCredential] = field(default_factory=_Once)
    verifications: _Once[Hashable, VerificationResult] = field(default_factory=_Once)
    windows: _Once[str, Block | None] = field(default_factory=_Once)
    overridden: dict[RotationKey, Pause] = field(default_factory=dict)  # paused, rotated by --ignore-pause
    # A rotation's outcome event waits here to be appended in the batch that saves its state.
    outcomes: dict[RotationKey, AuditEvent] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Closing:
    """The end of one rotation: its outcome event (if it wrote), its new state, its lease."""

    outcome: AuditEvent | None
    state: RotationState
    grant: LeaseGrant


@dataclass(frozen=True, slots=True, kw_only=True)
class _Closed:
    outcome_error: AuditError | None
    save_error: RotatorError | None
    kept: bool  # the lease was still ours: the state was saved


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
        self._source = source
        self._controls = controls
        self._stores = stores
        self._audit = audit
        self._state = state
        self._verifier = verifier
        self._listener = listener
        self._options = options
        self._audit_keys = AuditKeys(options.audit_key_id, options.audit_key, options.previous_audit_keys)
        self._clock = clock
        self._timer = timer
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._pool = ThreadPoolExecutor(max_workers=options.max_concurrency, thread_name_prefix="rotation")
        self._slots_lock = threading.Lock()
        self._target_slots: dict[str, threading.BoundedSemaphore] = {}
        self._append = Batcher(self._flush_appends)
        self._claim = Batcher(self._flush_claims)
        self._load = Batcher(self._flush_loads)
        self._close = Batcher(self._flush_closes)
        self._settled_through = 0  # every intent up to this seq has an outcome (recover looks after it)

    # --- sweeps -----------------------------------------------------------------

    def sweep(self, request: SweepRequest) -> SweepReport:
        """Run every (target, secret) of the request concurrently and wait for all of them."""
        scope = _Scope(request=request, run_id=new_run_id(), now=self._clock())
        started = self._timer()
        work = [
            (secret, RotationKey(target, secret.name))
            for secret in request.secrets
            for target in secret.targets
            if request.targets is None or target in request.targets
        ]
        holds = self._holds([key for _, key in work])  # one query: DESIGN.md step 1, before any claim
        futures: dict[int, Future[RotationResult]] = {}
        paused: dict[int, RotationResult] = {}
        for index in interleave_by_target([key for _, key in work]):  # submitted in turn by target
            secret, key = work[index]
            pause = holds.pause_of(key)
            if pause is not None and not request.ignore_pause:
                paused[index] = self._paused(scope, key, pause)
                continue
            if pause is not None:
                scope.overridden[key] = pause
            futures[index] = self._pool.submit(self._rotate, scope, pinned(secret, holds.pin_of(key)), key)
        results = [paused.get(index) or futures[index].result() for index in range(len(work))]  # in config order
        return self._report(scope, results, started)

    def _holds(self, keys: list[RotationKey]) -> Holds:
        return self._controls.holds(keys) if self._controls is not None and keys else Holds()

    def _paused(self, scope: _Scope, key: RotationKey, pause: Pause) -> RotationResult:
        """A paused pair: no claim, no Vault read, no write; reported and counted."""
        result = self._result(scope, key, Outcome.PAUSED, message=pause.describe())
        self._listener.rotation_finished(result)
        return result

    def recover(self, pairs: Mapping[RotationKey, SecretConfig], *, trigger: Trigger = Trigger.STARTUP) -> SweepReport:
        """Close open intents whose pair is free as ``interrupted`` and rotate those pairs again at once.

        A pair is free when its lease holder is dead (its instance lock is gone), released it
        (its own outcome write failed), or let it expire. Run at start-up and periodically by
        every live process. Each call looks only at intents after the last one it saw settled.
        """
        scope = _Scope(
            request=SweepRequest(secrets=[], trigger=trigger, force=True), run_id=new_run_id(), now=self._clock()
        )
        started = self._timer()
        head = self._audit.head()
        open_by_pair: dict[RotationKey, list[AuditRecord]] = {}
        for record in self._audit.open_intents(after=self._settled_through):
            open_by_pair.setdefault(RotationKey(record.event.target, record.event.secret), []).append(record)
        holds = self._holds(list(open_by_pair))  # a pinned pair is rotated at its pin; a paused one not again
        futures = {
            key: self._pool.submit(self._recover_one, scope, records, _held(pairs.get(key), holds, key))
            for key, records in open_by_pair.items()
        }
        outcomes = {key: future.result() for key, future in futures.items()}
        still_open = [open_by_pair[key][0].seq for key, (closed, _) in outcomes.items() if not closed]
        reached = head.seq if head is not None else 0
        self._settled_through = max(self._settled_through, min([reached, *(seq - 1 for seq in still_open)]))
        results = [result for _, result in outcomes.values() if result is not None]
        return self._report(scope, results, started)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _report(self, scope: _Scope, results: list[RotationResult], started: float) -> SweepReport:
        head = None
        if not scope.request.dry_run and results:
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

    def _rotate(
        self, scope: _Scope, secret: SecretConfig, key: RotationKey, grant: LeaseGrant | None = None
    ) -> RotationResult:
        started = self._timer()
        logs.bind(run_id=scope.run_id, secret=key.secret, target=key.target)
        try:
            result = self._guarded(scope, secret, key, grant)
        finally:
            logs.unbind("run_id", "secret", "target")
        result = replace(result, duration_ms=int((self._timer() - started) * 1000))
        self._listener.rotation_finished(result)
        return result

    def _guarded(
        self, scope: _Scope, secret: SecretConfig, key: RotationKey, grant: LeaseGrant | None
    ) -> RotationResult:
        try:
            if scope.request.dry_run:
                return self._attempt_guarded(scope, secret, key, self._load(key))
            if grant is None:
                grant, state = self._claim((key, scope.request.due_by))
                if grant is None:
                    return self._result(
                        scope,
                        key,
                        Outcome.SKIPPED,
                        message="another replica holds it or already rotated it for this due time",
                    )
            else:
                state = self._load(key)
        except RotatorError as e:
            return self._failure(scope, key, e)
        return self._finish(scope, secret, key, state, grant)

    def _finish(
        self, scope: _Scope, secret: SecretConfig, key: RotationKey, state: RotationState | None, grant: LeaseGrant
    ) -> RotationResult:
        result = self._attempt_guarded(scope, secret, key, state)
        if result.outcome in (Outcome.FAILED, Outcome.UNKNOWN):
            result = replace(result, next_run_at=self._retry_at(result.next_run_at, state, scope.now))
        outcome = scope.outcomes.pop(key, None)
        closed = self._close(_Closing(outcome, state_after(state, result, now=self._clock()), grant))
        if closed.outcome_error is not None:
            self._outcome_not_written(outcome, closed.outcome_error)
        if closed.save_error is not None:
            log.error("rotation.state_not_saved", error=closed.save_error.code, message=str(closed.save_error))
        elif not closed.kept:
            log.warning("rotation.lease_lost", token=grant.token)
        return result

    def _attempt_guarded(
        self, scope: _Scope, secret: SecretConfig, key: RotationKey, state: RotationState | None
    ) -> RotationResult:
        """One attempt, real or dry run; any error, even a bug, becomes a failed result."""
        try:
            return self._attempt(scope, secret, key, state)
        except RotatorError as e:
            return self._failure(scope, key, e, next_run_at=self._scheduled(secret, scope.now))
        except Exception as e:  # a bug must not leave the lease held or stop the sweep
            log.exception("rotation.internal_error", error=type(e).__name__)
            return self._failure(scope, key, RotatorError(f"internal error: {type(e).__name__}"))

    def _attempt(
        self, scope: _Scope, secret: SecretConfig, key: RotationKey, state: RotationState | None
    ) -> RotationResult:
        block = self._blocked(scope, secret)
        if block is not None:  # a deny window (or no allow window) holds it: nothing read, nothing written
            return self._result(scope, key, Outcome.DEFERRED, message=block.describe(), next_run_at=block.until)
        store = self._stores(key.target)
        # Keyed by the whole source (location and field mapping): one read per source per sweep.
        credential = scope.sources.get(secret.source, lambda: self._source.read(secret.source))
        hosts = registry_hosts(secret.registries, credential, secret=secret.name)
        config = render(credential, hosts, secret=secret.name)
        identity = store.identity
        decision = decide_rendering(state, config, keys=self._audit_keys, identity=identity, force=scope.request.force)
        new = decision.fingerprint
        previous = state.fingerprint if state else None
        ctx = EventContext(
            run_id=scope.run_id,
            key=key,
            api_host=store.api_host,
            registries=tuple(hosts),
            trigger=scope.request.trigger,
            actor=self._options.actor,
            operator=scope.request.operator,
            reason=scope.request.reason,
            credential=credential,
            fingerprint=str(new),
            previous_fingerprint=previous,
        )
        done = self._partial(scope, secret, ctx, credential, identity)
        action = decision.action
        if action is Action.UNCHANGED and scope.request.recheck:
            return self._recheck(scope, secret, credential, hosts, done)
        missing = False
        if action is Action.UNCHANGED:
            unchanged = self._unchanged(scope, ctx, store, secret, state=state, done=done)
            if unchanged is not None:
                return unchanged
            missing = True  # deleted in AI Core, and create_missing is set
        verification = scope.verifications.get(
            (secret.name, tuple(hosts)), lambda: self._verify(secret, credential, hosts)
        )
        ctx = replace(ctx, verification=str(verification.outcome))
        done = self._partial(scope, secret, ctx, credential, identity)
        if not verification_allows(verification, on_unreachable=secret.verify.on_unreachable):
            return self._reject(scope, ctx, verification, done)
        if scope.request.dry_run:
            return done(Outcome.DRY_RUN, would_write=True)
        forced = action is Action.FORCE and scope.request.trigger is Trigger.MANUAL
        why = _write_reason(action, state, identity, missing=missing)
        return self._apply(scope, ctx, store, secret, config, forced=forced, missing=missing, why=why, done=done)

    def _unchanged(
        self,
        scope: _Scope,
        ctx: EventContext,
        store: SecretStore,
        secret: SecretConfig,
        *,
        state: RotationState | None,
        done: Callable[..., RotationResult],
    ) -> RotationResult | None:
        """Nothing to write; once per schedule period, confirm the secret still exists (None: re-create it)."""
        if scope.request.dry_run:
            return done(Outcome.DRY_RUN, would_write=False)
        if not self._confirm_due(secret, state, scope.now):
            return done(Outcome.UNCHANGED)
        with self._slot(store.target):
            exists = store.exists(secret.name)
        if exists:
            return done(Outcome.UNCHANGED, confirmed=True)
        if not secret.create_missing:
            return self._missing(scope, ctx, done)
        return None

    def _recheck(
        self,
        scope: _Scope,
        secret: SecretConfig,
        credential: RegistryCredential,
        hosts: list[str],
        done: Callable[..., RotationResult],
    ) -> RotationResult:
        """The applied credential, verified again: a refusal means it was revoked at the registry."""
        verification = scope.verifications.get(
            (secret.name, tuple(hosts)), lambda: self._verify(secret, credential, hosts)
        )
        if not verification.ok:
            log.error(
                "verification.applied_credential_refused",
                outcome=str(verification.outcome),
                registry=verification.registry,
                detail=verification.detail,
            )
        return done(Outcome.UNCHANGED, verification=str(verification.outcome))

    def _apply(
        self,
        scope: _Scope,
        ctx: EventContext,
        store: SecretStore,
        secret: SecretConfig,
        config: DockerConfigJson,
        *,
        forced: bool,
        missing: bool,
        why: str | None,
        done: Callable[..., RotationResult],
    ) -> RotationResult:
        notes = ["written although unchanged (--force)"] if forced else []
        if (pause := scope.overridden.get(ctx.key)) is not None:
            notes.append(f"written although {pause.describe()} (--ignore-pause)")
        events = [ctx.event(EventType.FORCED, message="; ".join(notes))] if notes else []
        try:
            intent = self._append([*events, ctx.event(EventType.INTENT, message=why)])[-1]
        except AuditError as e:  # no PATCH without a committed intent
            self._listener.audit_write_failed(e)
            raise
        started = self._timer()
        try:
            receipt = self._write(store, secret, config, missing=missing)
        except OutcomeUnknown as e:  # it may have landed: neither applied nor failed may be claimed
            scope.outcomes[ctx.key] = ctx.event(
                EventType.UNKNOWN,
                intent_seq=intent.seq,
                error_code=e.code,
                message=f"{e}; the next run writes it again",
                duration_ms=self._elapsed(started),
            )
            return done(Outcome.UNKNOWN, error_code=e.code, message=str(e))
        except AICoreError as e:
            scope.outcomes[ctx.key] = ctx.event(
                EventType.FAILED,
                intent_seq=intent.seq,
                http_status=e.status,
                aicore_request_id=e.request_id,
                error_code=e.code,
                message=str(e),
                duration_ms=self._elapsed(started),
            )
            return done(
                Outcome.FAILED, http_status=e.status, request_id=e.request_id, error_code=e.code, message=str(e)
            )
        scope.outcomes[ctx.key] = ctx.event(
            EventType.APPLIED,
            intent_seq=intent.seq,
            http_status=receipt.status,
            aicore_request_id=receipt.request_id,
            duration_ms=self._elapsed(started),
        )
        return done(Outcome.APPLIED, http_status=receipt.status, request_id=receipt.request_id, confirmed=True)

    def _missing(self, scope: _Scope, ctx: EventContext, done: Callable[..., RotationResult]) -> RotationResult:
        """The secret was deleted in AI Core (by hand?) and ``create_missing`` is off: fail loudly, audited."""
        message = (
            f"secret {ctx.key.secret!r} no longer exists on target {ctx.key.target!r}; create it in AI Core "
            "(or set create_missing = true to let the rotator re-create it)"
        )
        self._append([ctx.event(EventType.MISSING, error_code=SECRET_MISSING, message=message)])
        return done(Outcome.FAILED, error_code=SECRET_MISSING, message=message)

    def _reject(
        self, scope: _Scope, ctx: EventContext, verification: VerificationResult, done: Callable[..., RotationResult]
    ) -> RotationResult:
        message = f"registry {verification.registry} refused the credential: {verification.detail}".rstrip(": ")
        if not scope.request.dry_run:  # http_status is AI Core's column: the registry's answer is in the message
            self._append([ctx.event(EventType.REJECTED, error_code=str(verification.outcome), message=message)])
        return done(Outcome.REJECTED, error_code=str(verification.outcome), message=message)

    def _write(
        self, store: SecretStore, secret: SecretConfig, config: DockerConfigJson, *, missing: bool
    ) -> WriteReceipt:
        with self._slot(store.target):
            if missing:  # just seen missing, and create_missing is set
                log.info("rotation.creating", reason="missing in AI Core and create_missing is set")
                return store.create(secret.name, config)
            try:
                return store.edit(secret.name, config)
            except SecretNotFound:
                if not secret.create_missing:
                    raise
                log.info("rotation.creating", reason="not found and create_missing is set")
                return store.create(secret.name, config)

    def _outcome_not_written(self, event: AuditEvent | None, error: AuditError) -> None:
        """The trail was down: the intent stays open and start-up recovery closes it."""
        self._listener.audit_write_failed(error)
        log.error(
            "audit.outcome_not_written",
            error=error.code,
            intent_seq=event.intent_seq if event else None,
            event_type=event.event if event else None,
        )

    def _verify(self, secret: SecretConfig, credential: RegistryCredential, hosts: list[str]) -> VerificationResult:
        results = [self._verifier.verify(credential, registry=host, policy=secret.verify) for host in hosts]
        failing = [result for result in results if not result.ok]
        return failing[0] if failing else results[0]

    def _recover_one(
        self, scope: _Scope, records: list[AuditRecord], secret: SecretConfig | None
    ) -> tuple[bool, RotationResult | None]:
        """Close every open intent of one pair if its lease is free; (closed, result of rotating it again)."""
        key = RotationKey(records[-1].event.target, records[-1].event.secret)
        logs.bind(run_id=scope.run_id, secret=key.secret, target=key.target)
        try:
            grant, _ = self._claim((key, None))
            if grant is None:
                return False, None  # its owner is alive and holds it: the intent is not orphaned
            try:
                self._append([self._interrupted(scope, record) for record in records])
            except RotatorError:
                self._state.release([grant])
                raise
            log.warning("rotation.interrupted", intent_seq=[record.seq for record in records])
        except RotatorError as e:
            return False, self._failure(scope, key, e)  # still open: the next pass tries again
        finally:
            logs.unbind("run_id", "secret", "target")
        if secret is None or key.target not in secret.targets:
            self._state.release([grant])
            return True, self._result(
                scope, key, Outcome.INTERRUPTED, message="no longer configured, or paused; not rotated again"
            )
        return True, self._rotate(scope, secret, key, grant)

    def _interrupted(self, scope: _Scope, record: AuditRecord) -> AuditEvent:
        return replace(
            record.event,
            event=EventType.INTERRUPTED,
            run_id=scope.run_id,
            trigger=scope.request.trigger,
            actor=self._options.actor,
            intent_seq=record.seq,
            message="no outcome was recorded (the process stopped, or could not write it); rotating again",
            http_status=None,
            aicore_request_id=None,
            error_code="interrupted",
            duration_ms=None,
            operator=None,
            reason=None,
        )

    # --- helpers ------------------------------------------------------------------

    def _partial(
        self, scope: _Scope, secret: SecretConfig, ctx: EventContext, credential: RegistryCredential, identity: str
    ) -> Callable[..., RotationResult]:
        base: dict[str, Any] = {
            "target_identity": identity,
            "fingerprint": ctx.fingerprint,
            "previous_fingerprint": ctx.previous_fingerprint,
            "source_version": credential.source.version,
            "registry_username": credential.username,
            "verification": ctx.verification,
            "credential_expires_at": credential.expires_at,
            "next_run_at": self._next_run(secret, credential, scope.now),
        }
        return lambda outcome, **more: self._result(scope, ctx.key, outcome, **{**base, **more})

    def _result(self, scope: _Scope, key: RotationKey, outcome: Outcome, **fields: Any) -> RotationResult:
        return RotationResult(key=key, outcome=outcome, trigger=scope.request.trigger, run_id=scope.run_id, **fields)

    def _failure(self, scope: _Scope, key: RotationKey, error: RotatorError, **fields: Any) -> RotationResult:
        log.warning("rotation.error", error=error.code, message=str(error))
        return self._result(
            scope,
            key,
            Outcome.FAILED,
            error_code=error.code,
            message=str(error),
            http_status=getattr(error, "status", None),
            request_id=getattr(error, "request_id", None),
            **fields,
        )

    def _retry_at(self, scheduled: datetime | None, state: RotationState | None, now: datetime) -> datetime:
        """A failed rotation is tried again after a backoff that grows with the failures in a row."""
        failures = (state.consecutive_failures if state else 0) + 1
        delay = retry_delay(
            failures,
            base=self._options.failure_backoff,
            cap=self._options.failure_backoff_max,
            spread=self._rng.random(),
        )
        return min(scheduled, now + delay) if scheduled else now + delay

    def _blocked(self, scope: _Scope, secret: SecretConfig) -> Block | None:
        check = self._options.window_block
        if check is None:
            return None
        return scope.windows.get(secret.name, lambda: check(secret, scope.now))

    def _confirm_due(self, secret: SecretConfig, state: RotationState | None, now: datetime) -> bool:
        if self._options.confirm_every is None:
            return False
        period = self._options.confirm_every(secret, now)
        return confirm_due(state.confirmed_at if state else None, now=now, period=period)

    def _scheduled(self, secret: SecretConfig, now: datetime) -> datetime | None:
        return self._options.schedule_next(secret, now) if self._options.schedule_next else None

    def _next_run(self, secret: SecretConfig, credential: RegistryCredential, now: datetime) -> datetime | None:
        scheduled = self._scheduled(secret, now)
        if scheduled is None:
            return None
        return next_run(scheduled, credential, fraction=self._options.renew_fraction)

    def _elapsed(self, started: float) -> int:
        return int((self._timer() - started) * 1000)

    def _slot(self, target: str) -> threading.BoundedSemaphore:
        with self._slots_lock:
            if target not in self._target_slots:
                limit = self._options.target_concurrency.get(target, self._options.per_target_concurrency)
                self._target_slots[target] = threading.BoundedSemaphore(limit)
            return self._target_slots[target]

    # --- batched writes -----------------------------------------------------------

    def _flush_appends(self, batches: list[list[AuditEvent]]) -> list[list[AuditRecord]]:
        records = self._audit.append([event for batch in batches for event in batch])
        out, at = [], 0
        for batch in batches:
            out.append(records[at : at + len(batch)])
            at += len(batch)
        return out

    def _flush_claims(
        self, items: list[tuple[RotationKey, datetime | None]]
    ) -> list[tuple[LeaseGrant | None, RotationState | None]]:
        grants: dict[RotationKey, LeaseGrant] = {}
        for due_by in {due for _, due in items}:
            keys = [key for key, due in items if due == due_by]
            grants.update(
                self._state.claim(keys, owner=self._options.owner, ttl=self._options.lease_ttl, due_by=due_by)
            )
        states = self._state.load(list(grants)) if grants else {}
        return [(grants.get(key), states.get(key)) for key, _ in items]

    def _flush_loads(self, keys: list[RotationKey]) -> list[RotationState | None]:
        states = self._state.load(keys)
        return [states.get(key) for key in keys]

    def _flush_closes(self, items: list[_Closing]) -> list[_Closed]:
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
            _Closed(
                outcome_error=outcome_error if item.outcome is not None else None,
                save_error=save_error,
                kept=item.grant.key not in unwritten,
            )
            for item in items
        ]


def pinned(secret: SecretConfig, pin: Pin | None) -> SecretConfig:
    """``secret`` reading its pinned KV v2 version (after ``rotator rollback``), or as configured."""
    if pin is None or secret.source.kind != "kv2":
        return secret
    return secret.model_copy(update={"source": secret.source.model_copy(update={"version": pin.version})})


def _held(secret: SecretConfig | None, holds: Holds, key: RotationKey) -> SecretConfig | None:
    """Recovery rotates a pinned pair at its pin and does not rotate a paused one again."""
    if secret is None or holds.pause_of(key) is not None:
        return None
    return pinned(secret, holds.pin_of(key))


SECRET_MISSING = "secret_missing"  # noqa: S105 (an error code, not a password)


def _write_reason(action: Action, state: RotationState | None, identity: str, *, missing: bool) -> str | None:
    """Why this write happens, for the intent row: the trail shows why an unchanged credential was written."""
    if missing:
        return "re-creating: the secret no longer exists in AI Core (create_missing is set)"
    if action is Action.REPOINT:
        before = state.target_identity if state else None
        return f"target re-pointed: last written to {before}, now {identity}"
    return None


def interleave_by_target(keys: Sequence[RotationKey]) -> list[int]:
    """Positions of ``keys`` taken one target at a time, largest target first.

    The pool's threads then spread over every target instead of queueing on the
    per-target slots of whichever target the configuration lists first.
    """
    by_target: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        by_target.setdefault(key.target, []).append(index)
    queues = sorted(by_target.values(), key=len, reverse=True)
    rounds = len(queues[0]) if queues else 0
    return [queue[turn] for turn in range(rounds) for queue in queues if turn < len(queue)]


def new_run_id() -> str:
    """A short random id naming one sweep in logs and in the audit trail."""
    return uuid.uuid4().hex[:16]
