"""Process faults: kill -9 at random moments, SIGTERM mid-rotation, a replica killed, `once` killed."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from tests.e2e.processes import eventually, is_event
from tests.faults import steps
from tests.faults.scene import FaultScene

SECRETS = ("acme", "ghcr")


@pytest.mark.parametrize("seed", range(10))
def test_kill_9_at_a_random_moment(case: FaultScene, seed: int) -> None:
    """One of two replicas is killed at a random moment of slow writes; the survivor writes the next change."""
    chance = random.Random(seed)
    delay, victim = chance.uniform(0.3, 2.5), chance.randrange(2)
    case.fault(f"kill -9 replica-{victim} after {delay:.1f}s of 0.7s PATCHes")
    for secret in SECRETS:
        steps.pair(case, secret)
    case.emulator.knobs(stall={"seconds": 0.7, "every": 1, "method": "PATCH"})
    workers = steps.replicas(case, 2)
    time.sleep(delay)
    workers[victim].kill()
    survivor = workers[1 - victim]
    passwords = {secret: case.put(steps.path_of(case, secret)) for secret in SECRETS}
    for secret, password in passwords.items():
        steps.holds(case, "tenant-a", secret, password, timeout=case.lease_ttl + 15)
    assert survivor.process.poll() is None
    case.emulator.knobs(stall=None)
    case.check()


def test_sigterm_mid_rotation(case: FaultScene) -> None:
    """SIGTERM while a PATCH is held: the rotation finishes inside the grace period, its outcome is written, exit 0."""
    case.fault("SIGTERM while a PATCH is held 2s")
    password = steps.pair(case)
    case.emulator.stall_next("tenant-a", seconds=2.0, method="PATCH")
    worker = steps.started(case)
    eventually(case.open_intents, timeout=15, what="the intent in flight")
    worker.send(signal.SIGTERM)
    worker.wait_for(is_event("worker.stopping", signal="SIGTERM"), timeout=10, what="worker.stopping")
    assert worker.wait(timeout=20) == 0
    steps.outcome(worker, "applied")
    steps.holds(case, "tenant-a", "acme", password)
    assert case.open_intents() == []
    case.check()


def test_three_replicas_one_killed_holding_an_intent(case: FaultScene) -> None:
    """The replica whose PATCH is in flight is killed; a live one closes its intent and rotates the pair again."""
    case.fault("3 replicas, kill -9 of the one whose PATCH is held 30s")
    steps.pair(case)
    case.emulator.stall_next("tenant-a", seconds=30.0, method="PATCH")
    workers = {worker.name: worker for worker in steps.replicas(case, 3)}
    owner = steps.owner(case)
    workers[owner].kill()
    password = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", password, timeout=case.lease_ttl + 15)
    eventually(lambda: "interrupted" in case.events(), timeout=case.lease_ttl + 5, what="the intent interrupted")
    case.check()


def test_once_killed_mid_rotation_is_reconciled_by_the_running_worker(case: FaultScene) -> None:
    """`rotator once` killed with its PATCH in flight: the running worker closes the intent within a lease TTL."""
    case.fault("kill -9 of `rotator once` with its PATCH held 30s, a worker running")
    case.every = "1h"
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    case.put(steps.path_of(case, "acme"))
    case.emulator.stall_next("tenant-a", seconds=30.0, method="PATCH")
    once = subprocess.Popen(
        case.command("once", "--log-format", "json"),
        env=case.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=case.workdir,
    )
    try:
        eventually(case.open_intents, timeout=15, what="the intent of `once`")
    finally:
        once.kill()
        once.wait(10)
    since = worker.mark()
    eventually(lambda: "interrupted" in case.events(), timeout=case.lease_ttl + 5, what="the intent interrupted")
    steps.outcome(worker, "applied", since=since)
    case.check()


def test_replicas_write_each_change_exactly_once(case: FaultScene) -> None:
    """Three replicas over two changes of two secrets: one intent and one accepted PATCH per change."""
    case.fault("none: 3 replicas share the schedule")
    first = {secret: steps.pair(case, secret) for secret in SECRETS}
    workers = steps.replicas(case, 3)
    for secret, password in first.items():
        steps.holds(case, "tenant-a", secret, password)
    for _ in range(2):
        passwords = {secret: case.put(steps.path_of(case, secret)) for secret in SECRETS}
        for secret, password in passwords.items():
            steps.holds(case, "tenant-a", secret, password)
    assert all(worker.process.poll() is None for worker in workers)
    eventually(lambda: case.events().count("applied") == 3 * len(SECRETS), timeout=5, what="one applied per change")
    assert not any(w.matching(is_event("rotation", outcome="failed")) for w in workers)
    case.check()


def test_once_while_a_worker_runs_writes_each_change_once(case: FaultScene) -> None:
    """`rotator once --force` next to a running worker with slow PATCHes: the lease lets only one write at a time."""
    case.fault("`rotator once --force` x2 racing a worker, PATCHes held 0.5s")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    case.emulator.knobs(stall={"seconds": 0.5, "every": 1, "method": "PATCH"})
    for _ in range(2):
        password = case.put(steps.path_of(case, "acme"))
        case.rotator("once", "--force", expect=None)
        steps.holds(case, "tenant-a", "acme", password)
    case.emulator.knobs(stall=None)
    assert worker.process.poll() is None
    case.check()


def test_reconciliation_never_interrupts_an_intent_its_owner_closed(case: FaultScene) -> None:
    """A reconcile pass that lists an intent while its PATCH is in flight must not close it again after `applied`."""
    case.fault("one rotation slot, a PATCH held 3s across reconcile passes")
    case.set("rotation", max_concurrency=1)
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    case.emulator.stall_next("tenant-a", seconds=3.0, method="PATCH")
    password = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", password)
    time.sleep(3.0)
    assert "interrupted" not in case.events(), "an intent closed by its live owner was interrupted as well"
    assert worker.process.poll() is None
    case.check()
