"""The rotation use case, part one: pure decisions and the values they work on.

Nothing here does I/O or reads a clock: every function takes what it decides on,
``now`` included. ``service.engine`` runs these decisions against the ports; the values a
sweep is asked with and answers (``SweepRequest``, ``SweepReport``) live here too, so the
ports, the listener and the command line depend on them without depending on the engine.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from service.dockerconfig import fingerprint
from service.model import (
    ChainHead,
    DockerConfigJson,
    Fingerprint,
    Outcome,
    RegistryCredential,
    RotationKey,
    RotationState,
    SecretSpec,
    Trigger,
    VerificationOutcome,
    VerificationResult,
)


class Action(enum.StrEnum):
    WRITE = "write"  # the credential changed (or was never written)
    UNCHANGED = "unchanged"  # same fingerprint as the last one applied: nothing to do
    FORCE = "force"  # unchanged, but written anyway on request
    REPOINT = "repoint"  # unchanged, but the target now names another AI Core tenant or service key


def decide(state: RotationState | None, new: Fingerprint, *, identity: str, force: bool) -> Action:
    """Write when the fingerprint or the target's identity differs from the last write; else only when forced.

    A state saved before identities were recorded (``target_identity`` NULL) adopts the
    current one rather than rewriting every secret of every tenant at once.
    """
    if state is None or state.fingerprint != new:
        return Action.WRITE
    if state.target_identity is not None and state.target_identity != identity:
        return Action.REPOINT
    return Action.FORCE if force else Action.UNCHANGED


@dataclass(frozen=True, slots=True)
class AuditKeys:
    """The HMAC key that fingerprints new writes, and the keys used before it, by key id."""

    key_id: str
    key: bytes = field(repr=False)
    previous: Mapping[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a rendering, and the fingerprint that describes it.

    ``fingerprint`` is under the current key, except when the credential is unchanged
    and the state's fingerprint was made with a previous key: then it is that recorded
    fingerprint, so the state keeps it and the next real change's ``previous_fingerprint``
    still matches the audit row that applied the credential.
    """

    action: Action
    fingerprint: Fingerprint


def decide_rendering(
    state: RotationState | None, config: DockerConfigJson, *, keys: AuditKeys, identity: str, force: bool
) -> Decision:
    """``decide`` over a rendering, recognising a credential applied under a previous audit key as unchanged.

    Anything that writes (a re-pointed target, ``--force``) is fingerprinted with the current key.
    """
    new = fingerprint(config, key=keys.key, key_id=keys.key_id)
    earlier = _under_previous_key(state, config, keys)
    if earlier is None:
        return Decision(decide(state, new, identity=identity, force=force), new)
    action = decide(state, earlier, identity=identity, force=force)  # the state holds ``earlier``: not a WRITE
    return Decision(action, earlier if action is Action.UNCHANGED else new)


def _under_previous_key(state: RotationState | None, config: DockerConfigJson, keys: AuditKeys) -> Fingerprint | None:
    """The state's fingerprint, when a previous key's fingerprint of ``config`` equals it; else None."""
    recorded = state.fingerprint if state is not None else None
    if recorded is None:
        return None
    old_key = keys.previous.get(recorded.key_id)
    if old_key is None or recorded.key_id == keys.key_id:
        return None
    again = fingerprint(config, key=old_key, key_id=recorded.key_id)
    return recorded if hmac.compare_digest(again.digest, recorded.digest) else None


def confirm_due(confirmed_at: datetime | None, *, now: datetime, period: timedelta) -> bool:
    """Whether an unchanged secret should be looked up in AI Core (drift): at least once per schedule period.

    Half a period, so that a run on every period boundary confirms even with jitter; extra
    runs between (retries, re-checks, dynamic leases) do not add requests.
    """
    return confirmed_at is None or now - confirmed_at >= period / 2


def verification_allows(result: VerificationResult, *, on_unreachable: str) -> bool:
    """Only ``ok`` lets a write go ahead, or an unreachable registry when configured to proceed."""
    if result.ok:
        return True
    return result.outcome is VerificationOutcome.REGISTRY_UNREACHABLE and on_unreachable == "proceed"


def lease_deadline(credential: RegistryCredential, *, fraction: float) -> datetime | None:
    """When a dynamic credential should be replaced: a fraction of its lease after it was read."""
    candidates = []
    if credential.source.lease_duration:
        candidates.append(credential.read_at + timedelta(seconds=credential.source.lease_duration * fraction))
    if credential.expires_at is not None:
        lifetime = credential.expires_at - credential.read_at
        candidates.append(credential.read_at + lifetime * fraction)
    return min(candidates) if candidates else None


def next_run(scheduled: datetime, credential: RegistryCredential | None, *, fraction: float) -> datetime:
    """The earlier of the schedule and the credential's renewal deadline."""
    deadline = lease_deadline(credential, fraction=fraction) if credential is not None else None
    return min(scheduled, deadline) if deadline is not None else scheduled


def retry_delay(failures: int, *, base: timedelta, cap: timedelta, spread: float) -> timedelta:
    """Exponential backoff after ``failures`` failures in a row; ``spread`` in [0, 1) takes up to half off (jitter)."""
    delay: timedelta = min(cap, base * 2 ** max(failures - 1, 0))
    return delay * (1 - spread / 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationResult:
    """What one rotation came to: for logs, metrics, state and the `once` report. No secret values."""

    key: RotationKey
    outcome: Outcome
    trigger: Trigger
    run_id: str
    fingerprint: Fingerprint | None = None
    previous_fingerprint: Fingerprint | None = None
    source_version: int | None = None
    vault_request_id: str | None = None  # the Vault read this credential came from (shared by a source's pairs)
    registry_username: str | None = None
    verification: VerificationOutcome | None = None
    http_status: int | None = None
    request_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    duration_ms: int = 0
    would_write: bool | None = None  # dry runs: whether a real run would write
    credential_expires_at: datetime | None = None
    next_run_at: datetime | None = None
    target_identity: str | None = None  # the AI Core host and client id this rotation reached
    confirmed: bool = False  # the secret was seen to exist in AI Core (a write's 202, or a GET)

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.FAILED, Outcome.REJECTED, Outcome.INTERRUPTED, Outcome.UNKNOWN)


def state_after(previous: RotationState | None, result: RotationResult, *, now: datetime) -> RotationState:
    """The state row once ``result`` is known."""
    base = previous or RotationState(key=result.key)
    checked = replace(
        base, last_attempt_at=now, next_run_at=result.next_run_at or base.next_run_at, last_outcome=str(result.outcome)
    )
    if result.outcome is Outcome.DEFERRED:  # a window held it: not a failure, next run at the window's end
        return checked
    if result.verification is not None and result.verification != VerificationOutcome.SKIPPED:
        checked = replace(checked, verification=str(result.verification), verified_at=now)
    if result.confirmed:
        checked = replace(checked, confirmed_at=now)
    if result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
        identity = result.target_identity if result.outcome is Outcome.APPLIED else None
        return replace(
            checked,
            target_identity=identity or base.target_identity or result.target_identity,
            fingerprint=result.fingerprint or base.fingerprint,
            source_version=result.source_version if result.source_version is not None else base.source_version,
            last_success_at=now,
            last_checked_at=now,
            consecutive_failures=0,
            last_error_code=None,
            credential_expires_at=result.credential_expires_at or base.credential_expires_at,
        )
    return replace(checked, consecutive_failures=base.consecutive_failures + 1, last_error_code=result.error_code)


def next_run_after(
    outcome: Outcome,
    *,
    scheduled: datetime | None,
    credential: RegistryCredential | None,
    failures_before: int,
    now: datetime,
    fraction: float,
    backoff: timedelta,
    backoff_max: timedelta,
    spread: float,
) -> datetime | None:
    """When the pair runs next, the one place this is decided.

    A failure (or an unknown outcome) is tried again after a backoff that grows with the
    failures in a row, never later than the schedule; otherwise the schedule, brought
    forward to the credential's renewal deadline (dynamic leases, expiry fields).
    """
    if outcome in (Outcome.FAILED, Outcome.UNKNOWN):
        retry = now + retry_delay(failures_before + 1, base=backoff, cap=backoff_max, spread=spread)
        return min(scheduled, retry) if scheduled is not None else retry
    if scheduled is None:
        return None
    return next_run(scheduled, credential, fraction=fraction)


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepRequest:
    """What one sweep is asked to do: these entries, on these targets, with these options."""

    secrets: Sequence[SecretSpec]
    trigger: Trigger = Trigger.SCHEDULE
    targets: frozenset[str] | None = None
    force: bool = False
    dry_run: bool = False
    due_by: datetime | None = None  # scheduled sweeps: skip what another replica already did
    recheck: bool = False  # verify credentials already applied against their registry again
    operator: str | None = None  # manual sweeps: the person who asked (audited beside the actor)
    reason: str | None = None
    ignore_pause: bool = False  # `once --ignore-pause`: rotate paused pairs too (each write says so)

    def pairs(self) -> list[tuple[SecretSpec, RotationKey]]:
        """Every (entry, pair) the request covers, in configuration order."""
        return [
            (secret, key)
            for secret in self.secrets
            for key in secret.pairs()
            if self.targets is None or key.target in self.targets
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepReport:
    """What one sweep came to: a result per pair, and the chain head after it."""

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


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an operator should hear about during a rotation; the listener logs it (the engine never does)."""

    event: str  # e.g. "rotation.state_not_saved"
    level: str  # "info", "warning" or "error"
    key: RotationKey | None = None
    fields: Mapping[str, object] = field(default_factory=dict)
    exception: BaseException | None = None  # a bug: the listener logs its traceback (without locals)
