"""Fakes of the service's own ports (service/ports.py), for unit tests of the use case.

They stand for our Protocols, never for a library: hvac, httpx and SQLAlchemy are tested
against real servers elsewhere.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.audit.chain import GENESIS, chain
from service.controls import Holds, Pause, Pin
from service.errors import AuditUnavailable, RotatorError, SecretNotFound, SourceError
from service.model import (
    AuditEvent,
    AuditRecord,
    ChainHead,
    DockerConfigJson,
    EventType,
    LeaseGrant,
    RegistryCredential,
    RotationKey,
    RotationState,
    SourceInfo,
    SourceSpec,
    VerificationOutcome,
    VerificationResult,
    VerifyPolicy,
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
from service.rotation import Notice

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class ManualMonotonic:
    """A monotonic clock (seconds) that moves only when told to; starts at the real one by default."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.monotonic() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSource:
    """Credentials by source path; counts reads; an entry may be an error to raise."""

    entries: dict[str, tuple[str, str] | RotatorError] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    lease_duration: int | None = None
    reads: list[str] = field(default_factory=list)
    clock: FakeClock = field(default_factory=FakeClock)
    history: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)  # KV v2: every version put

    def put(self, path: str, username: str, password: str) -> None:
        self.entries[path] = (username, password)
        self.versions[path] = self.versions.get(path, 0) + 1
        self.history[(path, self.versions[path])] = (username, password)

    def read(self, source: SourceSpec) -> RegistryCredential:
        self.reads.append(source.path)
        entry = self.entries.get(source.path)
        if source.version is not None:  # a pinned read (rollback): that version or nothing
            entry = self.history.get((source.path, source.version))
        if entry is None:
            raise SourceError(f"no secret at {source.mount}/{source.path}", mount=source.mount, path=source.path)
        if isinstance(entry, RotatorError):
            raise entry
        info = SourceInfo(
            mount=source.mount,
            path=source.path,
            version=source.version or self.versions.get(source.path),
            request_id=f"req-{len(self.reads)}",
            lease_duration=self.lease_duration,
        )
        return RegistryCredential(username=entry[0], password=entry[1], source=info, read_at=self.clock())


@dataclass
class FakeStore:
    """One target's secrets: the last value written per name, and every call in order."""

    target: str
    existing: set[str] = field(default_factory=set)
    api_host: str = "api.ai.example.com"
    values: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_with: dict[str, RotatorError] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    client_id: str = "sb-fake"

    @property
    def identity(self) -> str:
        return f"{self.api_host} {self.client_id}"

    def exists(self, name: str) -> bool:
        with self.lock:
            self.calls.append(("GET", name))
        return name in self.existing

    def edit(self, name: str, config: DockerConfigJson) -> WriteReceipt:
        with self.lock:
            self.calls.append(("PATCH", name))
        if name in self.fail_with:
            raise self.fail_with[name]
        if name not in self.existing:
            raise SecretNotFound(f"secret {name!r} does not exist", target=self.target, secret=name, status=404)
        self.values[name] = config.reveal()
        return WriteReceipt(status=202, request_id=f"aicore-{len(self.calls)}")

    def create(self, name: str, config: DockerConfigJson) -> WriteReceipt:
        with self.lock:
            self.calls.append(("POST", name))
        self.existing.add(name)
        self.values[name] = config.reveal()
        return WriteReceipt(status=202, request_id=f"aicore-{len(self.calls)}")


@dataclass
class FakeAudit:
    """An in-memory trail; ``down`` makes every append fail as if the database were unreachable."""

    records: list[AuditRecord] = field(default_factory=list)
    down: bool = False
    appends: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: FakeClock = field(default_factory=FakeClock)

    def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if self.down:
            raise AuditUnavailable("audit database unreachable")
        with self.lock:
            self.appends += 1
            head = self.head() or ChainHead(0, GENESIS)
            out = chain(events, head=head, recorded_at=self.clock())  # the real store's (pure) numbering and hashing
            self.records.extend(out)
            return out

    def head(self) -> ChainHead | None:
        return ChainHead(self.records[-1].seq, self.records[-1].row_hash) if self.records else None

    def open_intents(self, *, after: int = 0) -> list[AuditRecord]:
        closed = {r.event.intent_seq for r in self.records if r.event.intent_seq is not None}
        return [r for r in self.records if r.event.event is EventType.INTENT and r.seq not in closed and r.seq > after]

    def events(self, kind: EventType | None = None) -> list[AuditEvent]:
        return [r.event for r in self.records if kind is None or r.event.event is kind]


@dataclass
class FakeState:
    """State rows and leases in memory, with the port's claim / fencing rules.

    ``leases`` holds the leases in force (a test may plant one); ``last`` keeps each key's
    newest grant after its release. As in PostgresStateStore, a grant stays current (its
    save writes) until the key is granted again, and tokens count per key.
    """

    clock: FakeClock = field(default_factory=FakeClock)
    states: dict[RotationKey, RotationState] = field(default_factory=dict)
    leases: dict[RotationKey, LeaseGrant] = field(default_factory=dict)
    dead_owners: set[str] = field(default_factory=set)
    last: dict[RotationKey, LeaseGrant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, keys: Sequence[RotationKey] | None = None) -> dict[RotationKey, RotationState]:
        return {k: v for k, v in self.states.items() if keys is None or k in keys}

    def _newest(self, key: RotationKey) -> LeaseGrant | None:
        """The key's current grant: the lease in force, else the last one released."""
        return self.leases.get(key) or self.last.get(key)

    def claim(
        self, keys: Sequence[RotationKey], *, owner: str, ttl: timedelta, due_by: datetime | None
    ) -> dict[RotationKey, LeaseGrant]:
        granted = {}
        with self.lock:
            for key in keys:
                held = self.leases.get(key)
                if held and held.expires_at > self.clock() and held.owner not in self.dead_owners:
                    continue
                state = self.states.get(key)
                if due_by is not None and state and state.next_run_at and state.next_run_at > due_by:
                    continue
                newest = self._newest(key)
                token = (newest.token if newest else 0) + 1
                granted[key] = self.leases[key] = self.last[key] = LeaseGrant(key, owner, token, self.clock() + ttl)
        return granted

    def claim_loaded(
        self, keys: Sequence[RotationKey], *, owner: str, ttl: timedelta, due_by: datetime | None
    ) -> dict[RotationKey, tuple[LeaseGrant, RotationState | None]]:
        grants = self.claim(keys, owner=owner, ttl=ttl, due_by=due_by)
        with self.lock:
            return {key: (grant, self.states.get(key)) for key, grant in grants.items()}

    def save(self, states: Sequence[RotationState], *, release: Sequence[LeaseGrant] = ()) -> list[RotationKey]:
        with self.lock:
            current = {g.key for g in release if self._newest(g.key) == g}
            lost = {g.key for g in release} - current
            for state in states:
                if state.key not in lost:
                    self.states[state.key] = state
            for key in current & self.leases.keys():
                self.last[key] = self.leases.pop(key)
            return [state.key for state in states if state.key in lost]  # only states not written, as the real store

    def release(self, grants: Sequence[LeaseGrant]) -> None:
        self.save([], release=grants)


@dataclass
class FakeVerifier:
    """Answers per registry host; ``ok`` unless told otherwise. Counts calls."""

    outcomes: dict[str, VerificationOutcome] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def verify(self, credential: RegistryCredential, *, registry: str, policy: VerifyPolicy) -> VerificationResult:
        self.calls.append(registry)
        if policy.mode == "none":
            return VerificationResult(VerificationOutcome.SKIPPED, registry)
        outcome = self.outcomes.get(registry, VerificationOutcome.OK)
        return VerificationResult(outcome, registry, detail="" if outcome == "ok" else "401 from the token endpoint")


@dataclass
class RecordingListener:
    results: list[object] = field(default_factory=list)
    reports: list[object] = field(default_factory=list)
    audit_failures: list[RotatorError] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def noticed(self, notice: Notice) -> None:
        self.notices.append(notice)

    def rotating(self, run_id: str, key: RotationKey) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def rotation_finished(self, result: object) -> None:
        self.results.append(result)

    def sweep_finished(self, report: object) -> None:
        self.reports.append(report)

    def audit_write_failed(self, error: RotatorError) -> None:
        self.audit_failures.append(error)


@dataclass
class FakeControls:
    """Pauses and pins in memory (``service.ports.OperatorControls``); records the keys of each read."""

    pauses: list[Pause] = field(default_factory=list)
    pins: dict[RotationKey, Pin] = field(default_factory=dict)
    reads: list[int] = field(default_factory=list)  # how many keys each holds() call asked about

    def holds(self, keys: Sequence[RotationKey]) -> Holds:
        self.reads.append(len(keys))
        wanted = set(keys)
        return Holds(pauses=tuple(self.pauses), pins={k: p for k, p in self.pins.items() if k in wanted})


def _fakes_satisfy_the_ports() -> tuple[
    StateStore, AuditLog, CredentialSource, SecretStore, RegistryVerifier, RotationListener, OperatorControls
]:
    """Never called: strict mypy (pyproject's ``files``) checks here that each fake satisfies its Protocol."""
    return (
        FakeState(),
        FakeAudit(),
        FakeSource(),
        FakeStore(target="eu"),
        FakeVerifier(),
        RecordingListener(),
        FakeControls(),
    )
