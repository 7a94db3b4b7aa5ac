"""PostgreSQL faults: stopped mid-sweep and back, stopped while idle, refused at start, audit INSERT revoked."""

from __future__ import annotations

import time

from tests.e2e.processes import eventually, is_event
from tests.faults import steps
from tests.faults.scene import FaultScene

SECRETS = ("acme", "ghcr", "quay")


def test_stopped_mid_sweep_and_back(case: FaultScene) -> None:
    """PostgreSQL stops for 4s while PATCHes are in flight; the same worker resumes and writes the next change."""
    case.fault("PostgreSQL stopped 4s with PATCHes held 1s in flight")
    for secret in SECRETS:
        steps.pair(case, secret)
    case.emulator.knobs(stall={"seconds": 1.0, "every": 1, "method": "PATCH"})
    worker = steps.started(case)
    eventually(case.open_intents, timeout=15, what="an intent in flight")
    with case.postgres_down(4.0):
        pass
    case.emulator.knobs(stall=None)
    passwords = {secret: case.put(steps.path_of(case, secret)) for secret in SECRETS}
    for secret, password in passwords.items():
        steps.holds(case, "tenant-a", secret, password, timeout=case.lease_ttl + 15)
    assert worker.process.poll() is None, "the worker must survive the outage"
    case.check()


def test_silent_2_restart_while_idle_the_worker_takes_its_lock_again(case: FaultScene) -> None:
    """Silent mode 2: after an 8s PostgreSQL stop the worker re-takes its instance lock and rotates, no restart."""
    case.fault("PostgreSQL stopped 8s between runs")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    with case.postgres_down(8.0):
        pass
    since = worker.mark()
    password = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", password)
    assert len(worker.matching(is_event("instance.locked"))) >= 2, "the instance lock was never taken again"
    applied = steps.outcome(worker, "applied", since=since)
    assert applied["secret"] == "acme"
    case.check()


def test_refused_at_start_the_worker_waits_and_starts_once_it_answers(case: FaultScene) -> None:
    """`rotator run` with PostgreSQL down: it waits (a line per attempt, /livez 200, /readyz names it), then rotates."""
    case.fault("PostgreSQL down when `rotator run` starts, until it waited twice")
    password = steps.pair(case)
    case.write_config()
    case.stop_postgres()
    down = time.monotonic()
    worker = case.start_worker()
    steps.waited(worker, attempts=2)
    assert worker.process.poll() is None, f"the worker gave up while PostgreSQL was down{worker.tail()}"
    assert steps.probe(worker, "/livez") == 200
    assert steps.probe(worker, "/readyz") != 200
    assert "database" in steps.readiness(worker)
    case.outage += time.monotonic() - down
    case.start_postgres()
    worker.wait_for(is_event("worker.started"), timeout=40, what="worker.started once PostgreSQL answers")
    steps.holds(case, "tenant-a", "acme", password)
    eventually(lambda: steps.probe(worker, "/readyz") == 200, timeout=10, what="/readyz 200")
    case.check()


def test_audit_insert_revoked_then_granted_back(case: FaultScene) -> None:
    """Without INSERT on the trail nothing is written to AI Core; with it back the change is applied, no restart."""
    case.fault("REVOKE INSERT ON audit_events for 5s")
    case.use_app_role()
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    case.grant("REVOKE INSERT ON audit_events FROM {role}")
    writes_before = len([r for r in case.emulator.inspect.requests() if r.is_write])
    password = case.put(steps.path_of(case, "acme"))
    steps.outcome(worker, "failed", secret="acme")
    time.sleep(3.0)
    assert len([r for r in case.emulator.inspect.requests() if r.is_write]) == writes_before, "a PATCH without intent"
    case.grant("GRANT INSERT ON audit_events TO {role}")
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_silent_3_own_outcome_write_failed_is_reconciled_live(case: FaultScene) -> None:
    """Silent mode 3: the outcome INSERT fails while the PATCH is in flight; the same live process closes the intent."""
    case.fault("REVOKE INSERT ON audit_events while a PATCH is held 3s")
    case.use_app_role()
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    case.emulator.stall_next("tenant-a", seconds=3.0, method="PATCH")
    case.put(steps.path_of(case, "acme"))
    eventually(case.open_intents, timeout=15, what="the intent in flight")
    case.grant("REVOKE INSERT ON audit_events FROM {role}")
    time.sleep(4.0)
    case.grant("GRANT INSERT ON audit_events TO {role}")
    eventually(lambda: "interrupted" in case.events(), timeout=case.lease_ttl + 5, what="the intent interrupted")
    since = worker.mark()
    password = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", password)
    steps.outcome(worker, "applied", since=since)
    case.check()
