"""`kill -9` between the intent and the outcome: the next start closes the intent and rotates again at once."""

from __future__ import annotations

import time

import pytest

from service.config import RotationConfig
from tests.e2e.processes import eventually, is_event, is_rotation
from tests.e2e.scene import Scene, rows_of

STALL = 30.0  # the PATCH hangs this long; the worker is killed meanwhile
RECOVERY_WITHIN = 20.0  # seconds from the restart; the lease TTL is 5 minutes


def patches_received(scene: Scene) -> int:
    return scene.emulator.inspect.request_count("tenant-a", method="PATCH")


@pytest.mark.slow
def test_a_worker_killed_after_its_intent_is_recovered_at_the_next_start(scene: Scene) -> None:
    """The orphaned intent gets an `interrupted` outcome naming it and the secret is rotated again at start-up."""
    assert RotationConfig().lease_ttl.total_seconds() == 300, "the test relies on the default 5-minute lease"
    scene.add_tenant("tenant-a", timeout="60s")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    password = scene.put("registries/acme")
    scene.emulator.stall_next("tenant-a", seconds=STALL)

    doomed = scene.start_worker("doomed")
    intent = eventually(scene.open_intents, timeout=20, what="the intent committed")[0]
    # Killed only once the PATCH is held: killed earlier, the stall would wait for the successor's PATCH.
    eventually(lambda: patches_received(scene), timeout=20, what="the PATCH held by the emulator")
    doomed.kill()
    assert doomed.process.returncode == -9
    finished = [e for e in doomed.matching(is_rotation()) if e["outcome"] != "skipped"]
    assert not finished, "the rotation must not have finished before the kill"
    assert [record.seq for record in scene.open_intents()] == [intent.seq]

    restarted_at = time.monotonic()
    successor = scene.start_worker("successor")
    recovered = successor.wait_for(
        is_rotation(secret="acme-registry", trigger="startup"), timeout=RECOVERY_WITHIN, what="the recovery rotation"
    )
    assert recovered["outcome"] == "applied", recovered
    assert time.monotonic() - restarted_at < RECOVERY_WITHIN
    successor.wait_for(is_event("worker.recovered", interrupted=1), what="worker.recovered")
    assert successor.stop() == 0

    rows = scene.audit_rows()
    assert [row["event"] for row in rows] == ["intent", "interrupted", "intent", "applied"]
    interrupted = rows_of(rows, event="interrupted")[0]
    assert interrupted["intent_seq"] == intent.seq
    assert interrupted["trigger"] == "startup"
    assert interrupted["error_code"] == "interrupted"
    again, applied = rows[2], rows[3]
    assert again["trigger"] == applied["trigger"] == "startup"
    assert applied["intent_seq"] == again["seq"]
    assert applied["fingerprint"] == str(intent.event.fingerprint), "the same credential, written again"
    assert scene.open_intents() == []
    assert scene.stored_password("tenant-a", "acme-registry") == password
    assert applied["fingerprint"] == scene.fingerprint(scene.emulator.inspect.stored("tenant-a", "acme-registry"))
    scene.rotator("audit", "verify")
