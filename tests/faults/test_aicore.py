"""AI Core faults: 429 storm, 503 bursts, late PATCH, 401/403/404, secret deleted, target re-pointed, slow, hung."""

from __future__ import annotations

import time

from tests.e2e.processes import eventually, is_rotation
from tests.faults import steps
from tests.faults.scene import FaultScene


def test_429_storm(case: FaultScene) -> None:
    """Three 429s (Retry-After: 1) then one answer, for 4s: the change lands once, honouring Retry-After."""
    case.fault("429 + Retry-After 1s: 3 of every 4 API requests for 4s")
    password = steps.pair(case)
    case.emulator.knobs(fail={"status": 429, "every": 1, "burst": 3, "retry_after": 1})
    worker = steps.started(case)
    time.sleep(4.0)
    case.emulator.knobs(fail=None)
    steps.holds(case, "tenant-a", "acme", password)
    assert any(r.status == 429 for r in case.emulator.inspect.requests()), "the storm never reached the worker"
    assert worker.process.poll() is None
    case.check()


def test_503_bursts(case: FaultScene) -> None:
    """Bursts of two 503s, then three answers: writes retry and land once per change."""
    case.fault("503 bursts: 2 of every 5 API requests")
    secrets = ("acme", "ghcr", "quay")
    passwords = {secret: steps.pair(case, secret) for secret in secrets}
    case.emulator.knobs(fail={"status": 503, "every": 3, "burst": 2})
    steps.started(case)
    for secret, password in passwords.items():
        steps.holds(case, "tenant-a", secret, password)
    changed = {secret: case.put(steps.path_of(case, secret)) for secret in secrets}
    for secret, password in changed.items():
        steps.holds(case, "tenant-a", secret, password)
    case.emulator.knobs(fail=None)
    assert any(r.status == 503 for r in case.emulator.inspect.requests())
    case.check()


def test_late_patch_is_unknown_then_settled(case: FaultScene) -> None:
    """Silent mode 6: a PATCH held past the 3s client timeout (AI Core applies it later) is `unknown`, then settled."""
    case.fault("PATCH held 5s (client timeout 3s), applied late")
    case.set("rotation", retry={"attempts": 1, "base_delay": "200ms", "max_delay": "1s", "total": "5s"})
    password = steps.pair(case)
    case.emulator.stall_next("tenant-a", seconds=5.0, method="PATCH")
    worker = steps.started(case)
    unknown = worker.wait_for(is_rotation(secret="acme"), timeout=20, what="the first rotation's outcome")
    assert unknown["outcome"] == "unknown", unknown
    assert "failed" not in case.events(), "the trail claims a failure that did not happen"
    assert "unknown" in case.events()
    steps.holds(case, "tenant-a", "acme", password)
    steps.outcome(worker, "applied", secret="acme")
    case.check()


def test_401_then_healthy(case: FaultScene) -> None:
    """AI Core answers 401 to every API call for a while: runs fail `aicore_unauthorized`, then the change lands."""
    case.fault("401 on 20 API requests in a row")
    password = steps.pair(case)
    case.emulator.fail_next("tenant-a", status=401, count=20)
    worker = steps.started(case)
    failed = steps.outcome(worker, "failed")
    assert failed["error_code"] in ("aicore_unauthorized", "aicore_auth_failed"), failed
    case.emulator.clear_faults("tenant-a")
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_403_not_an_editor_then_granted(case: FaultScene) -> None:
    """The service key loses its editor role: 403, `aicore_forbidden`, not retried blindly; granted, it lands."""
    case.fault("403: the tenant's key is not an editor for 4s")
    password = steps.pair(case)
    case.emulator.set_editor("tenant-a", False)
    worker = steps.started(case)
    failed = steps.outcome(worker, "failed")
    assert failed["error_code"] == "aicore_forbidden", failed
    forbidden = [r for r in case.emulator.inspect.requests() if r.status == 403]
    assert len(forbidden) == 1, "a 403 is a configuration error: not retried inside the run"
    time.sleep(1.0)
    case.emulator.set_editor("tenant-a", True)
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_404_secret_never_created(case: FaultScene) -> None:
    """The secret does not exist and create_missing is off: 404 fails `aicore_secret_not_found`; created, it lands."""
    case.fault("404: the secret was never created in AI Core")
    password = steps.pair(case, seed=False)
    worker = steps.started(case)
    failed = steps.outcome(worker, "failed")
    assert failed["error_code"] == "aicore_secret_not_found", failed
    case.emulator.inspect.seed("tenant-a", "acme", "{}")
    steps.holds(case, "tenant-a", "acme", password)
    case.check()


def test_secret_deleted_is_created_again(case: FaultScene) -> None:
    """Drift: the secret is deleted in AI Core; with create_missing the next period re-creates it (POST), audited."""
    case.fault("secret deleted out of band, create_missing = true")
    password = steps.pair(case, create_missing=True)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", password)
    assert case.emulator.remove_secret("tenant-a", "acme")
    steps.holds(case, "tenant-a", "acme", password)
    assert worker.process.poll() is None
    posts = [
        r for r in case.emulator.inspect.requests() if (r.method, r.endpoint, r.status) == ("POST", "secrets", 202)
    ]
    assert posts, "the secret was not created again"
    assert case.events().count("applied") >= 2, "the re-creation is not in the audit trail"
    case.check()


def test_silent_4_secret_deleted_is_never_unchanged(case: FaultScene) -> None:
    """Silent mode 4: deleted in AI Core without create_missing: `secret_missing` and an audit event `missing`."""
    case.fault("secret deleted out of band, create_missing = false")
    password = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", password)
    steps.outcome(worker, "unchanged")
    assert case.emulator.remove_secret("tenant-a", "acme")
    failed = steps.outcome(worker, "failed", since=worker.mark(), timeout=10)
    assert failed["error_code"] == "secret_missing", failed
    after_failure = worker.events.index(failed)
    time.sleep(2.5)  # two schedule periods and more, the secret still missing
    assert not worker.matching(is_rotation(outcome="unchanged"), since=after_failure), "missing, reported unchanged"
    eventually(lambda: "missing" in case.events(), timeout=5, what="the audit event `missing`")
    case.emulator.inspect.seed("tenant-a", "acme", "{}")
    case.check()


def test_silent_5_target_repointed_forces_a_write(case: FaultScene) -> None:
    """Silent mode 5: the target's service key now names another tenant: the unchanged credential is written there."""
    case.fault("target re-pointed to another AI Core tenant (service key file changed)")
    password = steps.pair(case)
    case.add_tenant("tenant-b")
    case.emulator.inspect.seed("tenant-b", "acme", "{}")
    case.targets.pop("tenant-b")  # tenant-b is reached only through tenant-a's re-pointed key
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", password)
    steps.outcome(worker, "unchanged")
    case.repoint("tenant-a", to="tenant-b")
    case.write_config()
    worker.stop()
    worker = steps.started(case, "after-repoint")
    steps.holds(case, "tenant-b", "acme", password)
    case.check()


def test_short_token_ttl(case: FaultScene) -> None:
    """XSUAA tokens live 2s: the worker fetches new ones as they expire and keeps writing changes."""
    case.fault("XSUAA token TTL 2s")
    case.emulator.knobs(token_ttl=2)
    steps.pair(case)
    steps.started(case)
    for _ in range(2):
        password = case.put(steps.path_of(case, "acme"))
        steps.holds(case, "tenant-a", "acme", password)
        time.sleep(2.2)
    tokens = [r for r in case.emulator.inspect.requests() if r.endpoint == "token" and r.status == 200]
    assert len(tokens) >= 2, "expected new tokens after expiry"
    case.check()


def test_slow_aicore(case: FaultScene) -> None:
    """Every AI Core request takes 700 ms (client timeout 3s): rotations are slow but land once."""
    case.fault("latency 700 ms on every request")
    case.emulator.knobs(latency_ms=700)
    passwords = {secret: steps.pair(case, secret) for secret in ("acme", "ghcr")}
    steps.started(case)
    for secret, password in passwords.items():
        steps.holds(case, "tenant-a", secret, password)
    case.emulator.knobs(latency_ms=0)
    case.check()


def test_aicore_hangs_then_answers(case: FaultScene) -> None:
    """The emulator process is stopped (SIGSTOP) for 4s: requests time out; after SIGCONT the change lands."""
    case.fault("AI Core hangs (SIGSTOP) for 4s")
    first = steps.pair(case)
    worker = steps.started(case)
    steps.holds(case, "tenant-a", "acme", first)
    password = case.put(steps.path_of(case, "acme"))
    case.outage += 4.0
    case.emulator.pause()
    try:
        time.sleep(4.0)
    finally:
        case.emulator.resume()
    steps.holds(case, "tenant-a", "acme", password)
    assert worker.process.poll() is None
    case.check()


def test_token_endpoint_down_then_back(case: FaultScene) -> None:
    """XSUAA answers 503 to six token requests: no API call without a token, nothing written; then it lands."""
    case.fault("XSUAA token endpoint 503 x6")
    password = steps.pair(case)
    case.emulator.fail_next("tenant-a", status=503, count=6, endpoint="token")
    worker = steps.started(case)
    steps.outcome(worker, "failed", secret="acme")
    steps.holds(case, "tenant-a", "acme", password)
    failed_tokens = [r for r in case.emulator.inspect.requests() if r.endpoint == "token" and r.status == 503]
    assert len(failed_tokens) == 6
    case.check()
