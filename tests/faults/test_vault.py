"""Vault faults: down and back, down at start, token revoked, sealed, path deleted, version destroyed."""

from __future__ import annotations

import secrets
import time

import httpx

from tests.e2e.processes import eventually, is_event
from tests.faults import steps
from tests.faults.scene import FaultScene


def _no_write_while(case: FaultScene, writes_before: int) -> None:
    writes = len([r for r in case.emulator.inspect.requests() if r.is_write])
    assert writes == writes_before, "AI Core was written while the source could not be read"


def _writes(case: FaultScene) -> int:
    return len([r for r in case.emulator.inspect.requests() if r.is_write])


def test_down_and_back(case: FaultScene) -> None:
    """Vault unreachable for 3s (connections refused): runs fail without a PATCH, then the same worker catches up."""
    case.fault("Vault connections refused for 3s")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    case.outage += 3.0
    case.vault_down()
    writes = _writes(case)
    password = case.put(steps.path_of(case, "acme"))
    time.sleep(3.0)
    _no_write_while(case, writes)
    case.vault_up()
    steps.holds(case, "tenant-a", "acme", password)
    assert worker.process.poll() is None
    case.check()


def test_down_at_start_the_worker_waits(case: FaultScene) -> None:
    """`rotator run` with Vault down waits (a line per attempt, /livez 200, /readyz names Vault), then rotates."""
    case.fault("Vault down when `rotator run` starts, until it waited twice")
    password = steps.pair(case)
    case.write_config()
    case.vault_down()
    down = time.monotonic()
    worker = case.start_worker()
    steps.waited(worker, attempts=2)
    assert worker.process.poll() is None, f"the worker gave up while Vault was down{worker.tail()}"
    assert steps.probe(worker, "/livez") == 200
    assert steps.probe(worker, "/readyz") != 200
    assert "vault" in steps.readiness(worker)
    case.outage += time.monotonic() - down
    case.vault_up()
    worker.wait_for(is_event("worker.started"), timeout=40, what="worker.started once Vault answers")
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_token_revoked_then_issued_again(case: FaultScene) -> None:
    """The worker's token is revoked: rotations fail naming Vault, nothing is written; with it back, they apply."""
    case.fault("the worker's Vault token revoked, re-issued 4s later")
    token = f"faults-{secrets.token_hex(12)}"
    case.use_token(token)
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    case.root.auth.token.revoke(token)
    writes = _writes(case)
    since = worker.mark()
    password = case.put(steps.path_of(case, "acme"))
    failed = steps.outcome(worker, "failed", since=since)
    assert str(failed["error_code"]).startswith("vault_"), failed
    time.sleep(2.0)
    _no_write_while(case, writes)
    case.use_token(token)
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_sealed_then_unsealed(case: FaultScene) -> None:
    """Vault sealed until a run failed on it: `vault_sealed` (or unavailable), no PATCH; unsealed, they apply."""
    case.fault("Vault sealed until a run failed, then 1.5s more")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    password = case.put(steps.path_of(case, "acme"))
    writes = _writes(case)
    since = worker.mark()
    case.outage += 5.0
    case.seal()
    try:
        failed = steps.outcome(worker, "failed", since=since, timeout=10)
        assert failed["error_code"] in ("vault_sealed", "vault_unavailable"), failed
        time.sleep(1.5)
    finally:
        case.unseal()
    _no_write_while(case, writes)
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_path_deleted_then_written_again(case: FaultScene) -> None:
    """The KV path is deleted with all versions: the run fails `source_not_found`, no PATCH; a new value applies."""
    case.fault("KV v2 path deleted (metadata and all versions)")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    since = worker.mark()
    writes = _writes(case)
    case.root.secrets.kv.v2.delete_metadata_and_all_versions(path=steps.path_of(case, "acme"), mount_point=case.mount)
    failed = steps.outcome(worker, "failed", since=since)
    assert failed["error_code"] == "source_not_found", failed
    _no_write_while(case, writes)
    password = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_latest_version_destroyed(case: FaultScene) -> None:
    """The newest KV version is destroyed: the run fails `source_version_deleted`, no PATCH; a newer one applies."""
    case.fault("KV v2 latest version destroyed")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    second = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", second)
    since = worker.mark()
    writes = _writes(case)
    case.root.secrets.kv.v2.destroy_secret_versions(
        path=steps.path_of(case, "acme"), versions=[2], mount_point=case.mount
    )
    failed = steps.outcome(worker, "failed", since=since)
    assert failed["error_code"] == "source_version_deleted", failed
    _no_write_while(case, writes)
    third = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", third)
    case.check()


def test_a_pair_failing_past_its_schedule_is_stale_on_status_and_metrics(case: FaultScene) -> None:
    """While its source is gone the pair turns stale (/status, and rotator_secret_stale within 45s); then fresh."""
    case.fault("KV path deleted for longer than the schedule allows (period 1s + misfire grace 1s)")
    case.set("rotation", misfire_grace="1s")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    base = worker.http_url()
    case.root.secrets.kv.v2.delete_metadata_and_all_versions(path=steps.path_of(case, "acme"), mount_point=case.mount)
    # /status is computed per request; the metric by the worker's health job, every 30 s
    eventually(lambda: _stale(base) == (True, 1.0), timeout=45, what="the pair stale on /status and /metrics")
    password = case.put(steps.path_of(case, "acme"))
    steps.holds(case, "tenant-a", "acme", password)
    eventually(lambda: (_stale(base) or (True, 0))[0] is False, timeout=10, what="the pair fresh again on /status")
    case.check()


def _stale(base: str) -> tuple[bool, float] | None:
    """(the pair's stale flag on /status, the rotator_secret_stale sample on /metrics)."""
    rows = httpx.get(base + "/status", timeout=5).json()["rotations"]
    samples = [
        float(line.rsplit(" ", 1)[1])
        for line in httpx.get(base + "/metrics", timeout=5).text.splitlines()
        if line.startswith("rotator_secret_stale{") and 'secret="acme"' in line
    ]
    if len(rows) != 1 or len(samples) != 1:
        return None
    return bool(rows[0]["stale"]), samples[0]
