"""What a sweep and one of its rotations know: the values every step, audit row and result share."""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime

from service.controls import Pause
from service.engine.once import Once
from service.engine.options import WindowHold
from service.errors import RotatorError
from service.model import (
    AuditEvent,
    EventType,
    Fingerprint,
    Outcome,
    RegistryCredential,
    RotationKey,
    RotationState,
    SecretSpec,
    VerificationOutcome,
    VerificationResult,
)
from service.rotation import RotationResult, SweepRequest


@dataclass(slots=True)
class SweepScope:
    """One sweep: its request, run id and time, and what it reads once for all its rotations."""

    request: SweepRequest
    run_id: str = field(default_factory=lambda: new_run_id())  # noqa: PLW0108 (defined below)
    now: datetime | None = None
    sources: Once[Hashable, RegistryCredential] = field(default_factory=Once)
    verifications: Once[Hashable, VerificationResult] = field(default_factory=Once)
    windows: Once[Hashable, WindowHold | None] = field(default_factory=Once)
    overridden: dict[RotationKey, Pause] = field(default_factory=dict)  # paused, rotated by --ignore-pause

    @property
    def at(self) -> datetime:
        assert self.now is not None, "set by the rotator when the sweep starts"
        return self.now

    def result(self, key: RotationKey, outcome: Outcome, *, message: str | None = None) -> RotationResult:
        """A result known before any credential was read (skipped, interrupted)."""
        return RotationResult(
            key=key, outcome=outcome, trigger=self.request.trigger, run_id=self.run_id, message=message
        )

    def failure(self, key: RotationKey, error: RotatorError) -> RotationResult:
        """A rotation that failed before its credential was rendered (a claim, a read, a render, a bug)."""
        return RotationResult(
            key=key,
            outcome=Outcome.FAILED,
            trigger=self.request.trigger,
            run_id=self.run_id,
            error_code=error.code,
            message=str(error),
            http_status=getattr(error, "status", None),
            request_id=getattr(error, "request_id", None),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationContext:
    """One rotation once its credential is rendered and fingerprinted: every audit row and its result share it."""

    scope: SweepScope
    secret: SecretSpec
    key: RotationKey
    state: RotationState | None
    actor: str
    api_host: str
    identity: str  # the API host and client id a write reaches
    registries: tuple[str, ...]
    credential: RegistryCredential
    fingerprint: Fingerprint
    verification: VerificationOutcome | None = None

    @property
    def previous_fingerprint(self) -> Fingerprint | None:
        return self.state.fingerprint if self.state else None

    def event(
        self,
        kind: EventType,
        *,
        intent_seq: int | None = None,
        http_status: int | None = None,
        aicore_request_id: str | None = None,
        error_code: str | None = None,
        aicore_error_code: str | None = None,
        message: str | None = None,
        duration_ms: int | None = None,
    ) -> AuditEvent:
        """An audit row of this rotation."""
        source = self.credential.source
        return AuditEvent(
            event=kind,
            run_id=self.scope.run_id,
            target=self.key.target,
            api_host=self.api_host,
            secret=self.key.secret,
            registries=self.registries,
            trigger=self.scope.request.trigger,
            actor=self.actor,
            operator=self.scope.request.operator,
            reason=self.scope.request.reason,
            source_mount=source.mount,
            source_path=source.path,
            source_version=source.version,
            vault_request_id=source.request_id,
            registry_username=self.credential.username,
            fingerprint=self.fingerprint,
            previous_fingerprint=self.previous_fingerprint,
            verification=str(self.verification) if self.verification is not None else None,
            intent_seq=intent_seq,
            http_status=http_status,
            aicore_request_id=aicore_request_id,
            error_code=error_code,
            aicore_error_code=aicore_error_code,
            message=message,
            duration_ms=duration_ms,
        )

    def result(
        self,
        outcome: Outcome,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        error_code: str | None = None,
        message: str | None = None,
        would_write: bool | None = None,
        confirmed: bool = False,
        verification: VerificationOutcome | None = None,
    ) -> RotationResult:
        """The result of this rotation (what logs, metrics, state and ``once`` see)."""
        checked = verification if verification is not None else self.verification
        return RotationResult(
            key=self.key,
            outcome=outcome,
            trigger=self.scope.request.trigger,
            run_id=self.scope.run_id,
            fingerprint=self.fingerprint,
            previous_fingerprint=self.previous_fingerprint,
            source_version=self.credential.source.version,
            vault_request_id=self.credential.source.request_id,
            registry_username=self.credential.username,
            verification=checked,
            http_status=http_status,
            request_id=request_id,
            error_code=error_code,
            message=message,
            would_write=would_write,
            credential_expires_at=self.credential.expires_at,
            target_identity=self.identity,
            confirmed=confirmed,
        )


def new_run_id() -> str:
    """A short random id naming one sweep in logs and in the audit trail."""
    return uuid.uuid4().hex[:16]
