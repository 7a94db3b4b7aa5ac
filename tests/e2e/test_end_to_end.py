"""`rotator run` against OpenBao, PostgreSQL and the AI Core emulator, as a process."""

from __future__ import annotations

import json
import time

from tests.e2e.processes import eventually, is_event, is_rotation
from tests.e2e.scene import Scene, rows_of

PERIOD = 2.0
# The next tick comes at most one period after the write; then a Vault read, an audit
# commit and the PATCH. This allows for a busy two-core machine, not for another period.
SLACK = 1.0


def test_a_new_token_in_vault_reaches_ai_core_within_one_period_with_a_matching_audit_trail(bare_scene: Scene) -> None:
    """A token written to Vault is in AI Core within one schedule period; intent and applied carry its fingerprint."""
    scene = bare_scene
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    scene.write_config()
    assert "upgraded" in scene.rotator("db", "upgrade").stdout

    worker = scene.start_worker()
    first = worker.wait_for(is_rotation(secret="acme-registry", outcome="applied"), what="the first rotation")
    # Never rotated: the start-up catch-up runs it, unless the regular run is due within seconds anyway.
    assert first["trigger"] in ("startup", "schedule")
    assert first["source_version"] == 1

    mark = worker.mark()
    put_at = time.monotonic()
    new_password = scene.put("registries/acme")
    applied = worker.wait_for(
        is_rotation(secret="acme-registry", source_version=2), since=mark, timeout=10, what="version 2 rotated"
    )
    assert applied["outcome"] == "applied", applied
    assert applied["trigger"] == "schedule"
    patch = scene.emulator.inspect.writes("tenant-a")[-1]
    assert patch.method == "PATCH"
    assert patch.at - put_at <= PERIOD + SLACK, f"reached AI Core {patch.at - put_at:.2f}s after the write"
    assert scene.stored_password("tenant-a", "acme-registry") == new_password

    assert worker.stop() == 0
    exported = [json.loads(line) for line in scene.rotator("audit", "export", "--format", "jsonl").lines]
    intents = rows_of(exported, event="intent", source_version=2)
    outcomes = rows_of(exported, event="applied", source_version=2)
    assert len(intents) == len(outcomes) == 1
    assert outcomes[0]["intent_seq"] == intents[0]["seq"]
    assert intents[0]["fingerprint"] == outcomes[0]["fingerprint"] == applied["fingerprint"]
    assert outcomes[0]["fingerprint"] == scene.fingerprint(scene.emulator.inspect.stored("tenant-a", "acme-registry"))
    assert outcomes[0]["previous_fingerprint"] == first["fingerprint"]
    # The canonical line names the Vault read the audit rows name (OpenBao's own request id).
    assert applied["vault_request_id"]
    assert applied["vault_request_id"] == intents[0]["vault_request_id"] == outcomes[0]["vault_request_id"]
    assert [row["event"] for row in exported] == ["intent", "applied", "intent", "applied"]

    verify = scene.rotator("audit", "verify")
    assert verify.stdout.startswith("ok: 4 rows checked")
    anchors = worker.matching(is_event("audit.anchor"))
    assert anchors, "no chain head was logged"
    scene.rotator("audit", "verify", "--anchor", anchors[-1]["anchor"])


def test_the_worker_reads_each_source_once_per_sweep_and_writes_every_target(scene: Scene) -> None:
    """One secret on two targets: one sweep writes both, and later sweeps leave an unchanged credential alone."""
    scene.add_tenant("tenant-a")
    scene.add_tenant("tenant-b")
    scene.add_secret("shared-pull", targets=["tenant-a", "tenant-b"], path="registries/shared")
    password = scene.put("registries/shared")
    worker = scene.start_worker()
    for tenant in ("tenant-a", "tenant-b"):
        worker.wait_for(is_rotation(target=tenant, outcome="applied"), what=f"{tenant} rotated")
    mark = worker.mark()
    worker.wait_for(is_rotation(target="tenant-a", outcome="unchanged"), since=mark, what="a scheduled check")
    eventually(
        lambda: len(worker.matching(is_rotation(outcome="unchanged"), since=mark)) >= 4,
        timeout=10,
        what="two scheduled checks on each target",
    )
    assert worker.stop() == 0
    assert (
        scene.stored_password("tenant-a", "shared-pull") == scene.stored_password("tenant-b", "shared-pull") == password
    )
    assert scene.patches("tenant-a", "shared-pull") == scene.patches("tenant-b", "shared-pull") == 1
    assert [row["event"] for row in scene.audit_rows()].count("applied") == 2
