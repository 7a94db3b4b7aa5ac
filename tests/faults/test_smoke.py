"""Smoke."""

from tests.e2e.processes import eventually, is_event
from tests.faults.scene import FaultScene


def test_baseline(case: FaultScene) -> None:
    """One worker rotates one secret; every invariant holds."""
    case.fault("none")
    case.add_tenant("tenant-a")
    case.add_secret("acme", targets=["tenant-a"], path="reg/acme")
    case.put("reg/acme")
    worker = case.start_worker()
    worker.wait_for(is_event("worker.started"))
    eventually(lambda: case.patches("tenant-a", "acme") >= 1, timeout=15, what="first write")
    case.check()
