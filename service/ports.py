"""The interfaces the rotation use case depends on.

Adapters implement them (``vault.VaultSource``, ``aicore.client.AICoreClient``,
``audit.store.AuditStore``, ``audit.state.PostgresStateStore``, ``registry.RegistryVerifier``);
tests implement them with small fakes in ``tests/fakes.py``. ``RotationListener`` is
implemented by the composition root (logs, metrics). Every method raises only
errors from ``service.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from service.model import (
    AuditEvent,
    AuditRecord,
    ChainHead,
    DockerConfigJson,
    LeaseGrant,
    RegistryCredential,
    RotationKey,
    RotationState,
    SourceSpec,
    VerificationResult,
    VerifyPolicy,
    WriteReceipt,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from service.controls import Holds
    from service.errors import RotatorError
    from service.rotation import Notice, RotationResult, SweepReport


class CredentialSource(Protocol):
    """Reads registry credentials from Vault / OpenBao."""

    def read(self, source: SourceSpec) -> RegistryCredential:
        """Read one source now. Raises ``SourceError`` subclasses."""
        ...


class SecretStore(Protocol):
    """One target's Docker registry secrets in AI Core (write-only data)."""

    @property
    def target(self) -> str: ...

    @property
    def api_host(self) -> str: ...

    @property
    def identity(self) -> str:
        """Whom a write reaches (API host and client id): a changed identity forces a write."""
        ...

    def exists(self, name: str) -> bool:
        """Whether the secret exists (one GET; AI Core returns names only)."""
        ...

    def edit(self, name: str, config: DockerConfigJson) -> WriteReceipt:
        """PATCH the whole value (202). Raises ``SecretNotFound`` on 404."""
        ...

    def create(self, name: str, config: DockerConfigJson) -> WriteReceipt:
        """POST a new secret (202)."""
        ...


class AuditLog(Protocol):
    """The append-only, hash-chained audit trail."""

    def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append in order and commit before returning. Raises ``AuditError``."""
        ...

    def head(self) -> ChainHead | None: ...

    def open_intents(self, *, after: int = 0) -> list[AuditRecord]:
        """Intents after seq ``after`` that no outcome names (the process died, or its outcome write failed)."""
        ...


class StateStore(Protocol):
    """Mutable state per (target, secret), and the leases that make rotations happen once."""

    def load(self, keys: Sequence[RotationKey] | None = None) -> dict[RotationKey, RotationState]: ...

    def claim(
        self,
        keys: Sequence[RotationKey],
        *,
        owner: str,
        ttl: timedelta,
        due_by: datetime | None,
    ) -> dict[RotationKey, LeaseGrant]:
        """Claim the free leases among ``keys``; return only those granted.

        A lease is free when nobody holds it, it expired, or its holder's process is gone.
        With ``due_by``, a key whose state says its next run is after ``due_by`` is not
        granted: another replica already did this due time.
        """
        ...

    def claim_loaded(
        self,
        keys: Sequence[RotationKey],
        *,
        owner: str,
        ttl: timedelta,
        due_by: datetime | None,
    ) -> dict[RotationKey, tuple[LeaseGrant, RotationState | None]]:
        """``claim``, each grant with its key's state (None when it has none), read in the same round trip."""
        ...

    def save(self, states: Sequence[RotationState], *, release: Sequence[LeaseGrant] = ()) -> list[RotationKey]:
        """Upsert states and release leases in one transaction.

        A state whose key is in ``release`` is written only while that grant is still
        current (fencing); the keys that were not written are returned.
        """
        ...

    def release(self, grants: Sequence[LeaseGrant]) -> None: ...


class OperatorControls(Protocol):
    """Pauses and pins set by operators (``rotator pause``, ``rotator rollback``)."""

    def holds(self, keys: Sequence[RotationKey]) -> Holds:
        """Every pause in force and the pins of ``keys``, in one round trip. Raises ``AuditError``."""
        ...


class RegistryVerifier(Protocol):
    """Checks a credential against a registry's v2 API before it is written."""

    def verify(self, credential: RegistryCredential, *, registry: str, policy: VerifyPolicy) -> VerificationResult: ...


class RotationListener(Protocol):
    """Told about results as they happen: logs and metrics hang here, not in the use case."""

    def rotation_finished(self, result: RotationResult) -> None: ...

    def sweep_finished(self, report: SweepReport) -> None: ...

    def audit_write_failed(self, error: RotatorError) -> None: ...

    def noticed(self, notice: Notice) -> None:
        """Something an operator should hear about (the engine never logs itself)."""
        ...

    def rotating(self, run_id: str, key: RotationKey) -> AbstractContextManager[None]:
        """Around one rotation: log lines inside name its run, secret and target."""
        ...
