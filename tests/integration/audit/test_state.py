"""PostgresStateStore and InstanceLock: grants, races, expiry, owner death, fencing, due times."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit.db import make_engine
from service.audit.instance import InstanceLock
from service.audit.state import PostgresStateStore
from service.config import DatabaseConfig
from service.errors import AuditError
from service.model import Fingerprint, RotationKey, RotationState

REPO = Path(__file__).resolve().parents[3]
TTL = timedelta(minutes=5)
KEY = RotationKey("eu", "ghcr-pull")
Replica = tuple[InstanceLock, PostgresStateStore]


@pytest.fixture
def replica(database_url: str, engine: Engine) -> Iterator[Callable[[str], Replica]]:
    """Builds replicas: each its own engine (as a separate process would have) and instance lock."""
    made: list[tuple[Engine, InstanceLock]] = []

    def build(name: str) -> Replica:
        own = make_engine(DatabaseConfig(url=database_url, pool_size=2), password=None)
        lock = InstanceLock(own, name)
        lock.acquire()
        made.append((own, lock))
        return lock, PostgresStateStore(own, instance=lock)

    yield build
    for own, lock in made:
        lock.close()
        own.dispose()


def _claim(store: PostgresStateStore, lock: InstanceLock, keys: list[RotationKey], **kw: object) -> set[RotationKey]:
    options: dict[str, object] = {"ttl": TTL, "due_by": None, **kw}
    return set(store.claim(keys, owner=lock.instance_id, **options))  # type: ignore[arg-type]


def test_free_keys_are_granted_with_a_first_token(replica: Callable[[str], Replica]) -> None:
    """Unknown keys are free: each is granted with token 1 and a database-clock expiry ttl ahead."""
    _lock, store = replica("a")
    keys = [KEY, RotationKey("us", "ghcr-pull")]
    grants = store.claim(keys, owner="a", ttl=TTL, due_by=None)
    assert set(grants) == set(keys)
    assert {grant.token for grant in grants.values()} == {1}
    assert all(grant.owner == "a" for grant in grants.values())
    now = datetime.now(UTC)
    assert all(
        now + TTL - timedelta(seconds=30) < grant.expires_at < now + TTL + timedelta(seconds=30)
        for grant in grants.values()
    )


def test_a_live_holder_keeps_its_lease(replica: Callable[[str], Replica]) -> None:
    """Neither another replica nor the holder itself gets a lease that is held and unexpired."""
    lock_a, store_a = replica("a")
    lock_b, store_b = replica("b")
    assert _claim(store_a, lock_a, [KEY]) == {KEY}
    assert _claim(store_b, lock_b, [KEY]) == set()
    assert _claim(store_a, lock_a, [KEY]) == set()


def test_expired_lease_is_taken_over_with_a_higher_token(replica: Callable[[str], Replica]) -> None:
    """Once expires_at passes on the database clock, another replica is granted it, token + 1."""
    _lock_a, store_a = replica("a")
    _lock_b, store_b = replica("b")
    first = store_a.claim([KEY], owner="a", ttl=timedelta(0), due_by=None)[KEY]
    second = store_b.claim([KEY], owner="b", ttl=TTL, due_by=None)[KEY]
    assert (second.owner, second.token) == ("b", first.token + 1)


def test_closed_instance_lock_frees_its_leases_at_once(replica: Callable[[str], Replica]) -> None:
    """When the holder's instance lock ends, its unexpired lease is free immediately."""
    lock_a, store_a = replica("a")
    lock_b, store_b = replica("b")
    assert _claim(store_a, lock_a, [KEY]) == {KEY}
    lock_a.close()
    assert not lock_a.held()
    assert _claim(store_b, lock_b, [KEY]) == {KEY}


def test_terminated_backend_frees_its_leases(replica: Callable[[str], Replica], engine: Engine) -> None:
    """pg_terminate_backend on the holder's lock session frees its lease for another replica."""
    lock_a, store_a = replica("a")
    lock_b, store_b = replica("b")
    assert _claim(store_a, lock_a, [KEY]) == {KEY}
    with engine.begin() as conn:
        pid = conn.execute(
            sa.text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
                " AND classid = (:k >> 32)::oid AND objid = (:k & 4294967295)::oid"
            ),
            {"k": lock_a.key},
        ).scalar_one()
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar_one()
    assert not lock_a.held()
    assert _claim(store_b, lock_b, [KEY]) == {KEY}


WORKER = textwrap.dedent("""
    import sys, time
    from datetime import timedelta
    from service import logs
    from service.audit.db import make_engine
    from service.audit.instance import InstanceLock
    from service.audit.state import PostgresStateStore
    from service.config import DatabaseConfig
    from service.model import RotationKey

    logs.configure("warning", "json", sys.stderr)
    engine = make_engine(DatabaseConfig(url=sys.argv[1], pool_size=1), password=None)
    lock = InstanceLock(engine, "doomed")
    lock.acquire()
    store = PostgresStateStore(engine, instance=lock)
    grants = store.claim([RotationKey("eu", "ghcr-pull")], owner="doomed", ttl=timedelta(hours=1), due_by=None)
    print(len(grants), flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
def test_killed_worker_is_taken_over_immediately(replica: Callable[[str], Replica], database_url: str) -> None:
    """After kill -9 of a worker holding an hour-long lease, another replica takes it over within seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, database_url], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "1"
        lock_b, store_b = replica("b")
        assert _claim(store_b, lock_b, [KEY]) == set()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        deadline = time.monotonic() + 10
        granted: set[RotationKey] = set()
        while not granted and time.monotonic() < deadline:
            granted = _claim(store_b, lock_b, [KEY])
            time.sleep(0.05)  # the server notices the closed socket asynchronously
        assert granted == {KEY}
    finally:
        worker.kill()
        worker.wait(timeout=10)
        assert worker.stdout is not None
        worker.stdout.close()


def test_racing_replicas_never_share_a_key(replica: Callable[[str], Replica]) -> None:
    """Four replicas claiming the same keys at once from threads: every key is granted exactly once."""
    replicas = [replica(f"r{n}") for n in range(4)]
    rounds, per_round = 15, 20
    results: dict[int, list[set[RotationKey]]] = {n: [] for n in range(len(replicas))}
    barrier = threading.Barrier(len(replicas))

    def run(n: int) -> None:
        lock, store = replicas[n]
        for round_ in range(rounds):
            keys = [RotationKey(f"t{round_}", f"secret-{i:03d}") for i in range(per_round)]
            barrier.wait(timeout=30)
            results[n].append(_claim(store, lock, keys[n % 2 :] + keys[: n % 2]))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for round_ in range(rounds):
        granted = [results[n][round_] for n in results]
        assert sum(len(g) for g in granted) == per_round, f"round {round_}: a key granted twice or never"
        assert set().union(*granted) == {RotationKey(f"t{round_}", f"secret-{i:03d}") for i in range(per_round)}


def test_save_writes_state_and_releases(replica: Callable[[str], Replica]) -> None:
    """A current grant's save stores the state and frees the lease for anyone, with the next token."""
    _lock_a, store_a = replica("a")
    _lock_b, store_b = replica("b")
    grant = store_a.claim([KEY], owner="a", ttl=TTL, due_by=None)[KEY]
    state = RotationState(
        key=KEY, fingerprint=Fingerprint(key_id="k1", digest="ab" * 32), source_version=4, last_outcome="applied"
    )
    assert store_a.save([state], release=[grant]) == []
    assert store_b.load([KEY]) == {KEY: state}
    assert store_b.claim([KEY], owner="b", ttl=TTL, due_by=None)[KEY].token == grant.token + 1


def test_save_after_takeover_is_fenced(replica: Callable[[str], Replica]) -> None:
    """A replica whose lease was taken over cannot write: its save returns the key and changes nothing."""
    lock_a, store_a = replica("a")
    _lock_b, store_b = replica("b")
    stale = store_a.claim([KEY], owner="a", ttl=TTL, due_by=None)[KEY]
    lock_a.close()
    current = store_b.claim([KEY], owner="b", ttl=TTL, due_by=None)[KEY]
    late = RotationState(key=KEY, last_outcome="applied", fingerprint=Fingerprint(key_id="k1", digest="00" * 32))
    assert store_a.save([late], release=[stale]) == [KEY]
    assert store_b.load() == {}
    other = RotationKey("eu", "other-secret")
    assert store_a.save([late, RotationState(key=other)], release=[stale]) == [KEY]
    assert set(store_b.load()) == {other}
    assert store_b.save([RotationState(key=KEY, last_outcome="applied")], release=[current]) == []


def test_stale_release_leaves_the_new_holder_alone(replica: Callable[[str], Replica]) -> None:
    """Releasing an old grant does not free the lease its new holder has."""
    _lock_a, store_a = replica("a")
    lock_b, store_b = replica("b")
    lock_c, store_c = replica("c")
    stale = store_a.claim([KEY], owner="a", ttl=timedelta(0), due_by=None)[KEY]
    assert _claim(store_b, lock_b, [KEY]) == {KEY}
    store_a.release([stale])
    assert _claim(store_c, lock_c, [KEY]) == set()


def test_tokens_grow_by_one_and_are_never_reused(replica: Callable[[str], Replica]) -> None:
    """Claim and release three times: tokens 1, 2, 3."""
    _lock, store = replica("a")
    tokens = []
    for _ in range(3):
        grant = store.claim([KEY], owner="a", ttl=TTL, due_by=None)[KEY]
        tokens.append(grant.token)
        store.release([grant])
    assert tokens == [1, 2, 3]


def test_due_by_refuses_keys_already_done_for_this_due_time(replica: Callable[[str], Replica]) -> None:
    """A key whose next run is after due_by is not granted; an earlier or absent next run is."""
    lock, store = replica("a")
    due = datetime(2030, 1, 1, 12, tzinfo=UTC)
    later, sooner = KEY, RotationKey("us", "ghcr-pull")
    grants = store.claim([later, sooner], owner="a", ttl=TTL, due_by=None)
    states = [
        RotationState(key=later, next_run_at=due + timedelta(hours=6)),
        RotationState(key=sooner, next_run_at=due),
    ]
    assert store.save(states, release=list(grants.values())) == []
    assert _claim(store, lock, [later, sooner, RotationKey("ap", "new-one")], due_by=due) == {
        sooner,
        RotationKey("ap", "new-one"),
    }
    lock_b, store_b = replica("b")
    assert _claim(store_b, lock_b, [later], due_by=due + timedelta(hours=7)) == {later}


def test_load_returns_every_field(replica: Callable[[str], Replica]) -> None:
    """Every RotationState field round-trips; load() without keys returns all, with keys only those."""
    _lock, store = replica("a")
    moment = datetime(2030, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)
    full = RotationState(
        key=KEY,
        fingerprint=Fingerprint(key_id="k1", digest="ef" * 32),
        source_version=9,
        last_outcome="failed",
        last_error_code="aicore_forbidden",
        last_attempt_at=moment,
        last_success_at=moment - timedelta(days=1),
        last_checked_at=moment,
        consecutive_failures=3,
        next_run_at=moment + timedelta(hours=1),
        credential_expires_at=moment + timedelta(days=30),
        verification="ok",
        verified_at=moment,
    )
    other = RotationState(key=RotationKey("us", "quay-pull"))
    assert store.save([full, other]) == []
    assert store.load() == {KEY: full, other.key: other}
    assert store.load([KEY]) == {KEY: full}
    assert store.save([RotationState(key=KEY, consecutive_failures=1), RotationState(key=KEY)]) == []
    assert store.load([KEY]) == {KEY: RotationState(key=KEY)}


def test_fingerprints_are_stored_as_their_text(replica: Callable[[str], Replica], engine: Engine) -> None:
    """The state table holds a fingerprint as hmac-sha256:<key id>:<hex>, the text it held before the type."""
    _lock, store = replica("a")
    fingerprint = Fingerprint(key_id="k1", digest="ab" * 32)
    assert store.save([RotationState(key=KEY, fingerprint=fingerprint)]) == []
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT fingerprint FROM rotation_state")).scalar_one()
    assert stored == "hmac-sha256:k1:" + "ab" * 32
    assert store.load([KEY])[KEY].fingerprint == fingerprint


def test_a_foreign_fingerprint_reads_as_unknown(replica: Callable[[str], Replica], engine: Engine) -> None:
    """A state fingerprint that does not parse loads as None (the pair is written again), with a warning naming it."""
    from structlog.testing import capture_logs

    _lock, store = replica("a")
    assert store.save([RotationState(key=KEY, source_version=4, last_outcome="applied")]) == []
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rotation_state SET fingerprint = 'sha1:legacy-value'"))
    with capture_logs() as logs:
        loaded = store.load([KEY])[KEY]
        [(_grant, claimed)] = store.claim_loaded([KEY], owner="a", ttl=TTL, due_by=None).values()
    assert loaded == claimed == RotationState(key=KEY, source_version=4, last_outcome="applied")
    warnings = [entry for entry in logs if entry["event"] == "state.fingerprint_unreadable"]
    assert [(entry["log_level"], entry["target"], entry["secret"]) for entry in warnings] == [
        ("warning", "eu", "ghcr-pull")
    ] * 2
    assert "sha1:legacy-value" not in str(logs)


def test_claim_checks_owner_and_lock(engine: Engine, replica: Callable[[str], Replica]) -> None:
    """A claim for another owner, or before the instance lock is acquired, is refused."""
    _lock, store = replica("a")
    with pytest.raises(AuditError, match="instance 'a'"):
        store.claim([KEY], owner="b", ttl=TTL, due_by=None)
    idle = InstanceLock(engine, "idle")
    with pytest.raises(AuditError, match="not acquired"):
        PostgresStateStore(engine, instance=idle).claim([KEY], owner="idle", ttl=TTL, due_by=None)
    assert store.claim([], owner="a", ttl=TTL, due_by=None) == {}


def test_lost_instance_lock_is_replaced_before_claiming(replica: Callable[[str], Replica], engine: Engine) -> None:
    """A holder whose lock session was killed loses its lease to others, and its next claim takes a new key."""
    lock_a, store_a = replica("a")
    lock_b, store_b = replica("b")
    old_key = lock_a.key
    assert _claim(store_a, lock_a, [KEY]) == {KEY}
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objsubid = 1 AND classid = (:k >> 32)::oid AND objid = (:k & 4294967295)::oid"
            ),
            {"k": old_key},
        )
    assert _claim(store_b, lock_b, [KEY]) == {KEY}
    other = RotationKey("us", "quay-pull")
    assert _claim(store_a, lock_a, [other]) == {other}
    assert lock_a.key != old_key
    assert lock_a.held()
    assert _claim(store_b, lock_b, [other]) == set()


def _terminate_lock_session(engine: Engine, key: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objsubid = 1 AND classid = (:k >> 32)::oid AND objid = (:k & 4294967295)::oid"
            ),
            {"k": key},
        )


def test_nothing_is_granted_to_a_lock_that_is_not_live(replica: Callable[[str], Replica], engine: Engine) -> None:
    """Fencing in the grant itself: a claim carrying a key no live session holds is granted nothing."""
    lock, _store = replica("a")
    dead = lock.key
    _terminate_lock_session(engine, dead)

    class Stale(InstanceLock):
        def ensure(self, *, max_age: float = 0.0) -> int:  # as if the session died between the check and the grant
            return dead

    stale = PostgresStateStore(engine, instance=Stale(engine, "a"))
    assert stale.claim([KEY], owner="a", ttl=TTL, due_by=None) == {}


def test_the_lock_is_taken_back_after_its_session_dies_without_a_restart(
    replica: Callable[[str], Replica], engine: Engine
) -> None:
    """A failover kills the lock's session: ensure() takes a new session and key, and claims work again."""
    lock, store = replica("a")
    old = lock.key
    _terminate_lock_session(engine, old)
    assert not lock.held()
    new = lock.ensure()
    assert new != old
    assert lock.held()
    assert _claim(store, lock, [KEY]) == {KEY}
    _terminate_lock_session(engine, new)
    assert _claim(store, lock, [RotationKey("us", "ghcr-pull")]) == {RotationKey("us", "ghcr-pull")}
    assert lock.key not in (old, new)


def test_a_lock_closed_on_purpose_is_not_taken_back(replica: Callable[[str], Replica]) -> None:
    """close() ends the instance: a later claim is refused instead of quietly taking a new lock."""
    lock, store = replica("a")
    lock.close()
    with pytest.raises(AuditError, match="not acquired"):
        _claim(store, lock, [KEY])


def test_a_lock_seen_held_recently_is_not_asked_again_but_a_short_grant_asks(
    replica: Callable[[str], Replica], engine: Engine
) -> None:
    """ensure(max_age) trusts a recent answer; a claim granted less than it locked asks again, takes the lock back."""
    lock, store = replica("a")
    old = lock.ensure()
    _terminate_lock_session(engine, old)
    assert lock.ensure(max_age=60) == old  # seen held a moment ago: no round trip
    assert _claim(store, lock, [KEY]) == {KEY}  # the fenced grant came short: the lock is taken back, then granted
    assert lock.key != old
    assert lock.held()
