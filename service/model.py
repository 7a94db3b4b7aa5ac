"""Frozen value types shared by the use case and the adapters.

Nothing here does I/O. Types that hold a credential (``RegistryCredential``,
``DockerConfigJson``) mask it in ``repr`` so that a stray log call or a traceback
cannot print it.
"""

from __future__ import annotations

import enum
import functools
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

MASK = "***"


class RotationKey(NamedTuple):
    """One secret on one target: the unit of a rotation, a state row and a lease."""

    target: str
    secret: str

    def __str__(self) -> str:
        return f"{self.target}/{self.secret}"


class Trigger(enum.StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    STARTUP = "startup"
    ROLLBACK = "rollback"
    RECONCILE = "reconcile"  # a live worker closed an open intent of a free pair and rotates it again


class EventType(enum.StrEnum):
    """Audit events. ``intent`` is written ahead; the others close or annotate it."""

    INTENT = "intent"
    APPLIED = "applied"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # the PATCH may have landed (timeout or connection lost after sending)
    MISSING = "missing"  # the secret no longer exists in AI Core (drift) and is not re-created
    FORCED = "forced"
    PAUSED = "paused"
    RESUMED = "resumed"
    PINNED = "pinned"
    UNPINNED = "unpinned"

    @property
    def is_outcome(self) -> bool:
        return self in (EventType.APPLIED, EventType.FAILED, EventType.INTERRUPTED, EventType.UNKNOWN)


class Outcome(enum.StrEnum):
    """What one rotation came to (logs, metrics, state, `rotator once` output)."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    REJECTED = "rejected"
    SKIPPED = "skipped"  # another replica holds the lease, or it already ran for this due time
    DRY_RUN = "dry_run"
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown"  # the write may have landed; the next run settles it
    PAUSED = "paused"  # an operator paused the pair: skipped
    DEFERRED = "deferred"  # inside a deny window: postponed to its end


class VerificationOutcome(enum.StrEnum):
    OK = "ok"
    AUTH_FAILED = "auth_failed"
    SCOPE_DENIED = "scope_denied"
    REGISTRY_UNREACHABLE = "registry_unreachable"
    UNEXPECTED = "unexpected"
    SKIPPED = "skipped"  # verification not configured


class OnUnreachable(enum.StrEnum):
    """What a write does when the registry cannot be asked (``verify.on_unreachable``)."""

    FAIL = "fail"
    PROCEED = "proceed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSpec:
    """One Vault location and the mapping of its fields: what the use case reads (``SourceConfig.spec()``)."""

    kind: str  # "kv2", "kv1" or "dynamic"
    mount: str
    path: str
    version: int | None = None  # KV v2 only: a pinned version
    username_field: str = "username"
    password_field: str = "password"  # noqa: S105 (a field name, not a password)
    registry_field: str | None = None
    expiry_field: str | None = None

    @property
    def ident(self) -> tuple[str, str, str, int | None]:
        """Sources equal by this are read from the same place."""
        return (self.kind, self.mount.strip("/"), self.path.strip("/"), self.version)

    def describe(self) -> str:
        pinned = f"@v{self.version}" if self.version else ""
        return f"{self.kind}:{self.mount.strip('/')}/{self.path.strip('/')}{pinned}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyPolicy:
    """How a credential is checked at its registry before it is written (``VerifyConfig.spec()``)."""

    mode: str = "none"  # "none" or "registry"
    canary_repository: str | None = None
    on_unreachable: OnUnreachable = OnUnreachable.FAIL
    recheck_every: timedelta | None = None
    timeout: timedelta = timedelta(seconds=10)
    ca_cert: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """A resolved schedule (the secret's own or ``[defaults.schedule]``): interval or cron."""

    every: timedelta | None = None
    cron: str | None = None
    timezone: str = "UTC"
    jitter: timedelta = timedelta(0)
    max_phase: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowSpec:
    """A deny or allow window (``WindowConfig.spec()``): from each ``cron`` start, for ``duration``."""

    kind: str  # "deny" or "allow"
    cron: str
    duration: timedelta
    timezone: str = "UTC"

    def describe(self) -> str:
        return f"{self.kind} {self.cron!r} for {self.duration} ({self.timezone})"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretSpec:
    """One ``[[secrets]]`` entry as the use case sees it: plain values, no configuration library."""

    name: str
    targets: tuple[str, ...]
    source: SourceSpec
    registries: tuple[str, ...] = ()
    create_missing: bool = False
    verify: VerifyPolicy = VerifyPolicy()
    schedule: ScheduleSpec | None = None
    windows: tuple[WindowSpec, ...] = ()  # its own, beside the global [[windows]]

    def pairs(self) -> list[RotationKey]:
        return [RotationKey(target, self.name) for target in self.targets]


def spec_pairs(specs: Iterable[SecretSpec]) -> dict[RotationKey, SecretSpec]:
    """Every (target, secret) of ``specs`` and the entry that feeds it."""
    return {key: spec for spec in specs for key in spec.pairs()}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where a credential came from. Safe to log and to audit."""

    mount: str
    path: str
    version: int | None = None
    request_id: str | None = None
    lease_duration: int | None = None  # seconds; dynamic sources only
    renewable: bool = False
    lease_id: str | None = None  # dynamic sources: lets the caller renew or revoke the lease


@dataclass(frozen=True, slots=True)
class RegistryCredential:
    """A username and password (or token) read from a source. ``repr`` masks the password."""

    username: str
    password: str = field(repr=False)
    source: SourceInfo
    read_at: datetime
    registry: str | None = None  # a registry host named by the source itself, if mapped
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"RegistryCredential(username={self.username!r}, password={MASK!r}, "
            f"source={self.source!r}, registry={self.registry!r}, expires_at={self.expires_at!r})"
        )


@dataclass(frozen=True, slots=True)
class DockerConfigJson:
    """A rendered ``.dockerconfigjson`` string. ``repr`` and ``str`` mask it; use ``reveal()``."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __len__(self) -> int:
        return len(self._value.encode())

    def __repr__(self) -> str:
        return f"DockerConfigJson({MASK}, {len(self)} bytes)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``HMAC-SHA256(audit key, rendered .dockerconfigjson)``: the only trace of a credential we keep."""

    key_id: str
    digest: str  # lowercase hex

    PREFIX = "hmac-sha256"

    def __str__(self) -> str:
        return f"{self.PREFIX}:{self.key_id}:{self.digest}"

    @property
    def short(self) -> str:
        return self.digest[:12]

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """The fingerprint written as ``text``; ``ValueError`` unless ``hmac-sha256:<key id>:<64 lowercase hex>``.

        Whatever parses prints back to exactly ``text`` (``str(parse(t)) == t``), so a stored
        fingerprint read back and written again keeps its bytes (the audit chain hashes them).
        """
        match = _FINGERPRINT_RE.fullmatch(text)
        if match is None:
            raise ValueError("not a fingerprint: expected hmac-sha256:<key id>:<64 lowercase hex>")
        return cls(key_id=sys.intern(match[1]), digest=match[2])  # a few key ids, thousands of fingerprints

    @staticmethod
    def read(text: str | None) -> Fingerprint | None:
        """A stored fingerprint text, or None when there is none or it does not parse (a foreign value)."""
        return None if text is None else _read_stored(text)


_FINGERPRINT_RE = re.compile(rf"{Fingerprint.PREFIX}:([^:]+):([0-9a-f]{{64}})")


# A worker's sweeps load the same few texts again (an unchanged pair keeps its fingerprint):
# parsing one costs ~2 µs, a hit ~0.15 µs. Values are immutable, so sharing them is safe. Kept
# small: 8,192 entries held every pair's fingerprint and its text in the idle worker (2 MB at
# 5,000 pairs) for hits worth 10 ms per 10 minutes; `once` loads each state once, and misses.
@functools.lru_cache(maxsize=512)
def _read_stored(text: str) -> Fingerprint | None:
    try:
        return Fingerprint.parse(text)
    except ValueError:
        return None


def fingerprint_text(fingerprint: Fingerprint | None) -> str | None:
    """How a fingerprint is stored and printed (``hmac-sha256:<key id>:<hex>``); None stays None."""
    return None if fingerprint is None else str(fingerprint)


@dataclass(frozen=True, slots=True)
class WriteReceipt:
    """What AI Core answered to a create or an edit."""

    status: int
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class VerificationResult:
    outcome: VerificationOutcome
    registry: str
    detail: str = ""  # sanitised, never a credential
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (VerificationOutcome.OK, VerificationOutcome.SKIPPED)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One row to append to the audit trail, before the store numbers and chains it."""

    event: EventType
    run_id: str
    target: str
    api_host: str
    secret: str
    registries: tuple[str, ...]
    trigger: Trigger
    actor: str
    source_mount: str | None = None
    source_path: str | None = None
    source_version: int | None = None
    vault_request_id: str | None = None
    registry_username: str | None = None
    fingerprint: Fingerprint | None = None
    previous_fingerprint: Fingerprint | None = None
    verification: str | None = None
    http_status: int | None = None
    aicore_request_id: str | None = None
    error_code: str | None = None
    message: str | None = None  # sanitised: never a value, body or header
    duration_ms: int | None = None
    intent_seq: int | None = None  # outcomes name the intent they close
    operator: str | None = None  # manual actions: the person (``--operator`` or user@host), not the worker
    reason: str | None = None  # manual actions: why, in the operator's words (sanitised like message)
    aicore_error_code: str | None = None  # AI Core's own ``code`` from its error body; ``error_code`` is ours


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """An appended audit row: the event plus its place in the hash chain."""

    seq: int
    recorded_at: datetime  # the database server's clock
    event: AuditEvent
    prev_hash: str
    row_hash: str
    format: int = 2  # canonical format the row was hashed in (docs/audit.md)


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    row_hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.row_hash}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationState:
    """The mutable state of one (target, secret). Never kept in the audit table."""

    key: RotationKey
    fingerprint: Fingerprint | None = None
    source_version: int | None = None
    last_outcome: str | None = None
    last_error_code: str | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_checked_at: datetime | None = None
    consecutive_failures: int = 0
    next_run_at: datetime | None = None
    credential_expires_at: datetime | None = None
    verification: str | None = None
    verified_at: datetime | None = None
    target_identity: str | None = None  # the AI Core API host and client id the fingerprint was applied to
    confirmed_at: datetime | None = None  # when the secret was last seen to exist in AI Core


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A claimed (target, secret). ``token`` is a fencing token: it only ever grows."""

    key: RotationKey
    owner: str
    token: int
    expires_at: datetime


# --- domain rules (pure) ------------------------------------------------------------

# AI Core's rule for Docker registry secret names (reference/aicore-api.md), plus the
# 4-character minimum that its response ids impose. The spec writes the middle part as
# (?:_?[a-z0-9.-]+)*, which backtracks exponentially on a long name that fails at its
# end; (?:_?[a-z0-9.-])* accepts exactly the same names in linear time. \Z, not $:
# `$` would accept a trailing newline.
SECRET_NAME_RE = re.compile(r"^[a-z0-9](?:_?[a-z0-9.\-])*[a-z0-9]\Z")
SECRET_NAME_MIN, SECRET_NAME_MAX = 4, 63


def secret_name_problem(name: str) -> str | None:
    """Why AI Core would refuse this Docker registry secret name, or None."""
    if not SECRET_NAME_MIN <= len(name) <= SECRET_NAME_MAX:
        return f"AI Core secret names have {SECRET_NAME_MIN} to {SECRET_NAME_MAX} characters, {name!r} has {len(name)}"
    if not SECRET_NAME_RE.match(name):
        return (
            f"{name!r} breaks AI Core's name rule: lowercase letters, digits, '.', '-' "
            "(and single '_'), starting and ending with a letter or digit"
        )
    return None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Accept ``"500ms"``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` or a number of seconds."""
    if not isinstance(value, str) or value.strip().startswith("P"):
        return value  # numbers and ISO 8601 durations: pydantic parses them
    text = value.replace(" ", "")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 1h30m, 2d)")
    return timedelta(seconds=sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration``: ``4s``, ``6h``, ``1h30m``, ``500ms`` (not ``0:00:04``)."""
    millis = round(value.total_seconds() * 1000)
    sign, millis = ("-", -millis) if millis < 0 else ("", millis)
    seconds, ms = divmod(millis, 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return sign + ("".join(parts) or "0s")


def format_time(moment: datetime) -> str:
    """A timezone-aware time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (audit rows, anchors, exports)."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def short_fingerprint(fingerprint: Fingerprint | None) -> str | None:
    """``<key id>:<first 12 hex digits>`` of a fingerprint, for tables and lines read by people."""
    return None if fingerprint is None else f"{fingerprint.key_id}:{fingerprint.short}"
