"""SIGTERM / SIGINT: stop scheduling, let the rotation in flight finish, record it, revoke the Vault token, exit 0."""

from __future__ import annotations

import signal
import time

import hvac
import hvac.exceptions
import pytest

from tests.e2e.processes import eventually, is_event, is_rotation
from tests.e2e.scene import Scene, rows_of

STALL = 2.0  # the PATCH in flight when the signal comes
LONG_STALL = 15.0  # longer than the grace period
GRACE = "1s"


def approle_accessors(root: hvac.Client, mount: str) -> list[str]:
    """Accessors of the live tokens that were issued by logging in at this AppRole mount."""
    accessors = root.auth.token.list_accessors()["data"]["keys"]
    return [
        accessor
        for accessor in accessors
        if root.auth.token.lookup_accessor(accessor)["data"]["path"].startswith(f"auth/{mount}/login")
    ]


def token_alive(root: hvac.Client, accessor: str) -> bool:
    try:
        root.auth.token.lookup_accessor(accessor)
    except hvac.exceptions.InvalidRequest:
        return False
    return True


def _arrange(scene: Scene, *, stall: float) -> None:
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    scene.emulator.stall_next("tenant-a", seconds=stall)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_the_rotation_in_flight_finish_revokes_the_token_and_exits_0(
    scene: Scene, signum: signal.Signals
) -> None:
    """The stalled PATCH completes and is recorded as applied; the worker's own Vault token is revoked."""
    mount = scene.use_approle()
    _arrange(scene, stall=STALL)
    worker = scene.start_worker()
    worker.wait_for(is_event("vault.login", method="approle"), what="the AppRole login")
    [accessor] = eventually(lambda: approle_accessors(scene.root, mount), timeout=5, what="the worker's token")
    intent = eventually(scene.open_intents, timeout=20, what="the intent committed")[0]

    worker.send(signum)
    assert worker.wait(timeout=20) == 0

    stopping = worker.wait_for(is_event("worker.stopping", signal=signum.name), what="worker.stopping")
    applied = worker.wait_for(is_rotation(outcome="applied"), what="the rotation's outcome")
    assert worker.events.index(stopping) < worker.events.index(applied), "the rotation was not in flight"
    assert applied["duration_ms"] >= STALL * 1000 * 0.9
    worker.wait_for(is_event("vault.revoke", method="approle"), what="vault.revoke")
    worker.wait_for(is_event("worker.stopped", clean=True), what="a clean stop")
    assert not token_alive(scene.root, accessor), "the worker's Vault token outlived it"
    assert "Traceback" not in worker.text()

    rows = scene.audit_rows()
    assert [row["event"] for row in rows] == ["intent", "applied"], "nothing new may start after the signal"
    assert rows_of(rows, event="applied")[0]["intent_seq"] == intent.seq
    assert scene.open_intents() == []
    assert scene.patches("tenant-a", "acme-registry") == 1


@pytest.mark.slow
def test_a_grace_period_shorter_than_the_rotation_exits_promptly_and_the_next_start_closes_the_intent(
    scene: Scene,
) -> None:
    """With the grace period over, the worker exits 0 at once; its open intent is closed as `interrupted` later."""
    scene.set("rotation", shutdown_grace=GRACE)
    mount = scene.use_approle()
    _arrange(scene, stall=LONG_STALL)
    worker = scene.start_worker()
    worker.wait_for(is_event("vault.login", method="approle"), what="the AppRole login")
    [accessor] = eventually(lambda: approle_accessors(scene.root, mount), timeout=5, what="the worker's token")
    intent = eventually(scene.open_intents, timeout=20, what="the intent committed")[0]

    signalled = time.monotonic()
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=LONG_STALL) == 0
    took = time.monotonic() - signalled
    assert took < 5.0, f"the worker took {took:.1f}s to stop with a {GRACE} grace period"
    worker.wait_for(is_event("worker.grace_expired", in_flight=1), what="worker.grace_expired")
    worker.wait_for(is_event("worker.stopped", clean=False), what="worker.stopped")
    assert not worker.matching(is_rotation(outcome="applied"))
    assert not token_alive(scene.root, accessor), "the worker's Vault token outlived it"
    assert [record.seq for record in scene.open_intents()] == [intent.seq]

    successor = scene.start_worker("successor")
    successor.wait_for(is_rotation(trigger="startup", outcome="applied"), what="the recovery rotation")
    assert successor.stop() == 0
    rows = scene.audit_rows()
    assert [row["event"] for row in rows] == ["intent", "interrupted", "intent", "applied"]
    assert rows[1]["intent_seq"] == intent.seq
    assert scene.open_intents() == []
    scene.rotator("audit", "verify")
