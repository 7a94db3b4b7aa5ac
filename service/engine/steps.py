"""The steps of one rotation, top to bottom as DESIGN.md draws them; each returns its outcome.

The lease is claimed and the state loaded before (``rotator``); after, the outcome event is
appended together with the new state (``commit``). Here: read the source, render,
fingerprint and decide, confirm an unchanged secret still exists, verify, append the intent,
write, and say what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from service.dockerconfig import registry_hosts, render
from service.engine.commit import GroupCommit
from service.engine.concurrency import Pool
from service.engine.context import RotationContext, SweepScope
from service.engine.options import RotatorOptions, WindowHold
from service.errors import AICoreError, AuditError, OutcomeUnknown, SecretNotFound
from service.model import (
    AuditEvent,
    AuditRecord,
    DockerConfigJson,
    EventType,
    Outcome,
    RegistryCredential,
    RotationKey,
    RotationState,
    SecretSpec,
    Trigger,
    VerificationResult,
    WriteReceipt,
)
from service.ports import CredentialSource, RegistryVerifier, RotationListener, SecretStore
from service.rotation import Action, Notice, RotationResult, confirm_due, decide_rendering, verification_allows

SECRET_MISSING = "secret_missing"  # noqa: S105 (an error code, not a password)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the steps came to: the result, and the outcome event to append with the state (if it wrote)."""

    result: RotationResult
    outcome: AuditEvent | None = None
    credential: RegistryCredential | None = None  # its lease or expiry brings the next run forward


class RotationSteps:
    """One rotation over the ports, from a claimed pair and its state to an ``Attempt``."""

    def __init__(
        self,
        *,
        source: CredentialSource,
        stores: Callable[[str], SecretStore],
        verifier: RegistryVerifier,
        commit: GroupCommit,
        pool: Pool,
        listener: RotationListener,
        options: RotatorOptions,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._stores = stores
        self._verifier = verifier
        self._commit = commit
        self._pool = pool
        self._listener = listener
        self._options = options
        self._keys = options.audit_keys
        self._timer = timer

    def run(self, scope: SweepScope, secret: SecretSpec, key: RotationKey, state: RotationState | None) -> Attempt:
        """Steps 3 to 9 of DESIGN.md for one pair; errors propagate to the rotator's one guard."""
        hold = self._window(scope, secret)
        if hold is not None:  # a deny window (or no allow window) holds it: nothing read, nothing written
            deferred = scope.result(key, Outcome.DEFERRED, message=hold.describe())
            return Attempt(replace(deferred, next_run_at=hold.until))
        store = self._stores(key.target)
        credential = self._read(scope, secret)
        hosts = registry_hosts(list(secret.registries), credential, secret=secret.name)
        config = render(credential, hosts, secret=secret.name)
        decision = decide_rendering(state, config, keys=self._keys, identity=store.identity, force=scope.request.force)
        ctx = RotationContext(
            scope=scope,
            secret=secret,
            key=key,
            state=state,
            actor=self._options.actor,
            api_host=store.api_host,
            identity=store.identity,
            registries=tuple(hosts),
            credential=credential,
            fingerprint=decision.fingerprint,
        )
        missing = False
        if decision.action is Action.UNCHANGED:
            unchanged = self._unchanged(ctx, store)
            if unchanged is not None:
                return unchanged
            missing = True  # deleted in AI Core, and create_missing is set
        verification = self._verify(ctx)
        ctx = replace(ctx, verification=verification.outcome)
        if not verification_allows(verification, on_unreachable=secret.verify.on_unreachable):
            return self._reject(ctx, verification)
        if scope.request.dry_run:
            return Attempt(ctx.result(Outcome.DRY_RUN, would_write=True), credential=credential)
        intent = self._intent(ctx, decision.action, missing=missing)
        return self._write(ctx, store, config, intent, missing=missing)

    def _window(self, scope: SweepScope, secret: SecretSpec) -> WindowHold | None:
        check = self._options.window_block
        if check is None:
            return None
        return scope.windows.get((secret.name, secret.targets), lambda: check(secret, scope.at))

    # --- step 3: the source, once per sweep -------------------------------------------

    def _read(self, scope: SweepScope, secret: SecretSpec) -> RegistryCredential:
        """Keyed by the whole source (location and field mapping): one read per source per sweep."""
        return scope.sources.get(secret.source, lambda: self._source.read(secret.source))

    # --- step 5: nothing changed -------------------------------------------------------

    def _unchanged(self, ctx: RotationContext, store: SecretStore) -> Attempt | None:
        """Nothing to write; once per schedule period, confirm the secret still exists (None: re-create it)."""
        request = ctx.scope.request
        if request.recheck:
            return self._recheck(ctx)
        if request.dry_run:
            return Attempt(ctx.result(Outcome.DRY_RUN, would_write=False), credential=ctx.credential)
        if not self._confirm_due(ctx):
            return Attempt(ctx.result(Outcome.UNCHANGED), credential=ctx.credential)
        with self._pool.slot(store.target):
            exists = store.exists(ctx.secret.name)
        if exists:
            return Attempt(ctx.result(Outcome.UNCHANGED, confirmed=True), credential=ctx.credential)
        if not ctx.secret.create_missing:
            return self._missing(ctx)
        return None

    def _confirm_due(self, ctx: RotationContext) -> bool:
        if self._options.confirm_every is None:
            return False
        period = self._options.confirm_every(ctx.secret, ctx.scope.at)
        return confirm_due(ctx.state.confirmed_at if ctx.state else None, now=ctx.scope.at, period=period)

    def _missing(self, ctx: RotationContext) -> Attempt:
        """The secret was deleted in AI Core (by hand?) and ``create_missing`` is off: fail loudly, audited."""
        message = (
            f"secret {ctx.key.secret!r} no longer exists on target {ctx.key.target!r}; create it in AI Core "
            "(or set create_missing = true to let the rotator re-create it)"
        )
        self._commit.append([ctx.event(EventType.MISSING, error_code=SECRET_MISSING, message=message)])
        return Attempt(ctx.result(Outcome.FAILED, error_code=SECRET_MISSING, message=message))

    def _recheck(self, ctx: RotationContext) -> Attempt:
        """The applied credential, verified again: a refusal means it was revoked at the registry."""
        verification = self._verify(ctx)
        if not verification.ok:
            self._listener.noticed(
                Notice(
                    "verification.applied_credential_refused",
                    "error",
                    ctx.key,
                    {
                        "outcome": str(verification.outcome),
                        "registry": verification.registry,
                        "detail": verification.detail,
                    },
                )
            )
        return Attempt(ctx.result(Outcome.UNCHANGED, verification=verification.outcome), credential=ctx.credential)

    # --- step 6: verification ----------------------------------------------------------

    def _verify(self, ctx: RotationContext) -> VerificationResult:
        """Once per (secret, registries) per sweep: the first refusal among the hosts, else the first result."""

        def check() -> VerificationResult:
            policy = ctx.secret.verify
            results = [self._verifier.verify(ctx.credential, registry=h, policy=policy) for h in ctx.registries]
            failing = [result for result in results if not result.ok]
            return failing[0] if failing else results[0]

        return ctx.scope.verifications.get((ctx.secret.name, ctx.registries), check)

    def _reject(self, ctx: RotationContext, verification: VerificationResult) -> Attempt:
        message = f"registry {verification.registry} refused the credential: {verification.detail}".rstrip(": ")
        code = str(verification.outcome)
        if not ctx.scope.request.dry_run:  # http_status is AI Core's column: the registry's answer is in the message
            self._commit.append([ctx.event(EventType.REJECTED, error_code=code, message=message)])
        return Attempt(ctx.result(Outcome.REJECTED, error_code=code, message=message))

    # --- step 7: the intent ------------------------------------------------------------

    def _intent(self, ctx: RotationContext, action: Action, *, missing: bool) -> AuditRecord:
        """Append the intent and commit it: no PATCH without it (an AuditError stops the rotation here)."""
        forced = action is Action.FORCE and ctx.scope.request.trigger is Trigger.MANUAL
        notes = ["written although unchanged (--force)"] if forced else []
        if (pause := ctx.scope.overridden.get(ctx.key)) is not None:
            notes.append(f"written although {pause.describe()} (--ignore-pause)")
        events = [ctx.event(EventType.FORCED, message="; ".join(notes))] if notes else []
        events.append(ctx.event(EventType.INTENT, message=write_reason(action, ctx, missing=missing)))
        try:
            return self._commit.append(events)[-1]
        except AuditError as e:
            self._listener.audit_write_failed(e)
            raise

    # --- steps 8 and 9: the write and its outcome ---------------------------------------

    def _write(
        self, ctx: RotationContext, store: SecretStore, config: DockerConfigJson, intent: AuditRecord, *, missing: bool
    ) -> Attempt:
        started = self._timer()
        try:
            receipt = self._send(ctx, store, config, missing=missing)
        except OutcomeUnknown as e:  # it may have landed: neither applied nor failed may be claimed
            event = ctx.event(
                EventType.UNKNOWN,
                intent_seq=intent.seq,
                error_code=e.code,
                aicore_error_code=e.aicore_code,
                message=f"{e}; the next run writes it again",
                duration_ms=self._elapsed(started),
            )
            return Attempt(ctx.result(Outcome.UNKNOWN, error_code=e.code, message=str(e)), event, ctx.credential)
        except AICoreError as e:
            event = ctx.event(
                EventType.FAILED,
                intent_seq=intent.seq,
                http_status=e.status,
                aicore_request_id=e.request_id,
                error_code=e.code,
                aicore_error_code=e.aicore_code,
                message=str(e),
                duration_ms=self._elapsed(started),
            )
            result = ctx.result(
                Outcome.FAILED, http_status=e.status, request_id=e.request_id, error_code=e.code, message=str(e)
            )
            return Attempt(result, event, ctx.credential)
        event = ctx.event(
            EventType.APPLIED,
            intent_seq=intent.seq,
            http_status=receipt.status,
            aicore_request_id=receipt.request_id,
            duration_ms=self._elapsed(started),
        )
        result = ctx.result(Outcome.APPLIED, http_status=receipt.status, request_id=receipt.request_id, confirmed=True)
        return Attempt(result, event, ctx.credential)

    def _send(
        self, ctx: RotationContext, store: SecretStore, config: DockerConfigJson, *, missing: bool
    ) -> WriteReceipt:
        name = ctx.secret.name
        with self._pool.slot(store.target):
            if missing:  # just seen missing, and create_missing is set
                self._creating(ctx, "missing in AI Core and create_missing is set")
                return store.create(name, config)
            try:
                return store.edit(name, config)
            except SecretNotFound:
                if not ctx.secret.create_missing:
                    raise
                self._creating(ctx, "not found and create_missing is set")
                return store.create(name, config)

    def _creating(self, ctx: RotationContext, reason: str) -> None:
        self._listener.noticed(Notice("rotation.creating", "info", ctx.key, {"reason": reason}))

    def _elapsed(self, started: float) -> int:
        return int((self._timer() - started) * 1000)


def write_reason(action: Action, ctx: RotationContext, *, missing: bool) -> str | None:
    """Why this write happens, for the intent row: the trail shows why an unchanged credential was written."""
    if missing:
        return "re-creating: the secret no longer exists in AI Core (create_missing is set)"
    if action is Action.REPOINT:
        before = ctx.state.target_identity if ctx.state else None
        return f"target re-pointed: last written to {before}, now {ctx.identity}"
    return None
