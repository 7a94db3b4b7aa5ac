"""One contract suite, two implementations: each port's fixture runs over the fake and the real store.

As APScheduler's ``tests/conftest.py`` parametrises its data stores, ``state_world`` and
``audit_world`` are parametrised with ids ``fake`` (``tests/fakes.py``) and ``postgres``
(``service/audit/``, on a fresh migrated database from the ``database_url`` fixture). The
real ones run on the database clock, so time and death are made to happen through the
world's helpers: ``expire`` advances the fake's clock but waits for the database clock,
``kill`` marks the fake's owner dead but terminates the real instance lock's session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit import migrate
from service.audit.db import make_engine
from service.audit.instance import InstanceLock
from service.audit.state import PostgresStateStore
from service.audit.store import AuditStore
from service.config import DatabaseConfig
from service.model import LeaseGrant, RotationKey
from service.ports import AuditLog, StateStore
from tests.fakes import FakeAudit, FakeClock, FakeState

IMPLEMENTATIONS = ["fake", "postgres"]
TTL = timedelta(minutes=5)  # long enough never to run out during a test
SHORT_TTL = timedelta(milliseconds=200)  # for leases a test then lets expire
DEATHS = ["session-killed", "lock-closed"]  # how a real owner goes: its lock's backend ends, or it closes the lock
EXPIRY_WAIT = 10.0  # seconds the real store may take to pass a short expiry on the database clock


@dataclass(frozen=True)
class Replica:
    """One worker's view of the state store: its owner name and the store it claims through."""

    name: str
    store: StateStore

    def claim(
        self, keys: Sequence[RotationKey], *, ttl: timedelta = TTL, due_by: datetime | None = None
    ) -> dict[RotationKey, LeaseGrant]:
        """Claim ``keys`` as this replica's owner."""
        return self.store.claim(keys, owner=self.name, ttl=ttl, due_by=due_by)


@dataclass(frozen=True)
class StateWorld:
    """A state store implementation, the replicas sharing it, and how to move its time or kill an owner."""

    replica: Callable[[str], Replica]
    expire: Callable[[Sequence[LeaseGrant]], None]  # returns once every lease in the list has expired
    kill: Callable[[Replica, str], None]  # the replica's process is gone (its leases are free), in one of DEATHS
    now: Callable[[], datetime]  # the clock the store's expiry is measured on


@dataclass(frozen=True)
class AuditWorld:
    """An audit log, and a second view of the same trail (a separate connection for the real store)."""

    log: AuditLog
    reader: AuditLog


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to head."""
    engine = make_engine(DatabaseConfig(url=database_url, pool_size=2), password=None)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _fake_state_world() -> StateWorld:
    clock = FakeClock()
    fake = FakeState(clock=clock)

    def expire(leases: Sequence[LeaseGrant]) -> None:
        clock.now = max([clock.now, *(lease.expires_at for lease in leases)]) + timedelta(milliseconds=1)

    def kill(replica: Replica, how: str) -> None:
        assert how in DEATHS
        fake.dead_owners.add(replica.name)

    return StateWorld(replica=lambda name: Replica(name, fake), expire=expire, kill=kill, now=clock)


@dataclass
class _PostgresReplicas:
    """Builds replicas as separate processes would be: each its own engine and instance lock."""

    database_url: str
    engine: Engine
    made: list[tuple[Engine, InstanceLock]] = field(default_factory=list)
    locks: dict[str, InstanceLock] = field(default_factory=dict)

    def replica(self, name: str) -> Replica:
        own = make_engine(DatabaseConfig(url=self.database_url, pool_size=2), password=None)
        lock = InstanceLock(own, name)
        lock.acquire()
        self.made.append((own, lock))
        self.locks[name] = lock
        return Replica(name, PostgresStateStore(own, instance=lock))

    def now(self) -> datetime:
        with self.engine.connect() as conn:
            moment: datetime = conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        return moment

    def expire(self, leases: Sequence[LeaseGrant]) -> None:
        latest = max(lease.expires_at for lease in leases)
        deadline = time.monotonic() + EXPIRY_WAIT
        while self.now() <= latest:
            assert time.monotonic() < deadline, f"the database clock did not pass {latest} in {EXPIRY_WAIT}s"
            time.sleep(0.02)

    def kill(self, replica: Replica, how: str) -> None:
        """Terminate the backend that holds the replica's instance lock (a dead process), or close the lock."""
        lock = self.locks[replica.name]
        if how == "lock-closed":
            lock.close()
            return
        assert how == "session-killed"
        key = lock.key
        find = sa.text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
            " AND classid = (:k >> 32)::oid AND objid = (:k & 4294967295)::oid"
        )
        with self.engine.begin() as conn:
            pid = conn.execute(find, {"k": key}).scalar_one()
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar_one()
        assert not lock.held()

    def close(self) -> None:
        for own, lock in self.made:
            lock.close()
            own.dispose()


@pytest.fixture(params=IMPLEMENTATIONS)
def state_world(request: pytest.FixtureRequest) -> Iterator[StateWorld]:
    """The StateStore port over FakeState (``fake``) and over PostgresStateStore with InstanceLock (``postgres``)."""
    if request.param == "fake":
        yield _fake_state_world()
        return
    replicas = _PostgresReplicas(request.getfixturevalue("database_url"), request.getfixturevalue("migrated_engine"))
    try:
        yield StateWorld(replica=replicas.replica, expire=replicas.expire, kill=replicas.kill, now=replicas.now)
    finally:
        replicas.close()


@pytest.fixture(params=IMPLEMENTATIONS)
def audit_world(request: pytest.FixtureRequest) -> Iterator[AuditWorld]:
    """The AuditLog port over FakeAudit (``fake``) and over AuditStore (``postgres``), with a second reader."""
    if request.param == "fake":
        fake = FakeAudit()
        yield AuditWorld(log=fake, reader=fake)
        return
    engine: Engine = request.getfixturevalue("migrated_engine")
    other = make_engine(DatabaseConfig(url=request.getfixturevalue("database_url"), pool_size=1), password=None)
    try:
        yield AuditWorld(log=AuditStore(engine), reader=AuditStore(other))
    finally:
        other.dispose()
