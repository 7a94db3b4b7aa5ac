"""`rotator run` left alone: every pair of a reused name is rotated, and SIGHUP reloads the config."""

from __future__ import annotations

import json
import signal

import httpx

from tests.e2e.processes import eventually, is_event, is_rotation
from tests.e2e.scene import Scene

TENANTS = ("tenant-000", "tenant-001", "tenant-002")


def test_one_name_on_three_targets_each_with_its_own_source_is_rotated_by_the_worker(scene: Scene) -> None:
    """Three [[secrets]] entries named reg-000, a robot account per tenant: run writes each tenant's own."""
    passwords = {}
    for tenant in TENANTS:
        scene.add_tenant(tenant)
        scene.add_secret("reg-000", targets=[tenant], path=f"robots/{tenant}")
        passwords[tenant] = scene.put(f"robots/{tenant}")
    worker = scene.start_worker()
    started = worker.wait_for(is_event("worker.started"), what="the worker to start")
    assert (started["pairs"], started["secrets"], started["jobs"]) == (3, 3, 1)
    for tenant in TENANTS:
        worker.wait_for(is_rotation(target=tenant, secret="reg-000", outcome="applied"), what=f"{tenant} rotated")
    assert {tenant: scene.stored_password(tenant, "reg-000") for tenant in TENANTS} == passwords
    http = worker.http_url()
    status = json.loads(scene.rotator("status", "--json").stdout)
    assert sorted(row["target"] for row in status) == list(TENANTS)
    assert all(row["last_outcome"] in ("applied", "unchanged") and row["last_success_at"] for row in status)
    served = httpx.get(f"{http}/status", timeout=5).json()
    assert served["pairs"] == 3
    assert served["never"] == 0
    assert worker.stop() == 0


def test_sighup_applies_a_new_secret_and_keeps_the_running_config_when_the_new_one_is_bad(scene: Scene) -> None:
    """SIGHUP: a secret added to the file is rotated without a restart; a broken file is refused in one line."""
    scene.add_tenant("tenant-a")
    scene.add_secret("first-pull", targets=["tenant-a"], path="registries/first")
    scene.put("registries/first")
    worker = scene.start_worker()
    worker.wait_for(is_rotation(secret="first-pull", outcome="applied"), what="the first secret")

    scene.add_secret("second-pull", targets=["tenant-a"], path="registries/second")
    second = scene.put("registries/second")
    scene.write_config()
    mark = worker.mark()
    worker.send(signal.SIGHUP)
    reloaded = worker.wait_for(is_event("config.reloaded"), since=mark, what="the reload")
    assert (reloaded["pairs"], reloaded["pairs_added"], reloaded["jobs_added"]) == (2, 1, 1)
    worker.wait_for(is_rotation(secret="second-pull", outcome="applied"), since=mark, what="the new secret rotated")
    assert scene.stored_password("tenant-a", "second-pull") == second

    good = scene.config_path.read_text()
    scene.config_path.write_text(good.replace('every = "2s"', 'every = "not-a-duration"', 1))
    mark = worker.mark()
    worker.send(signal.SIGHUP)
    failed = worker.wait_for(is_event("config.reload_failed"), since=mark, what="the refused reload")
    assert "not a duration" in failed["problems"]
    worker.wait_for(is_rotation(secret="second-pull", outcome="unchanged"), since=mark, what="still rotating")

    scene.config_path.write_text(good)
    scene.secrets[:] = [s for s in scene.secrets if s["name"] != "second-pull"]
    scene.write_config()
    mark = worker.mark()
    worker.send(signal.SIGHUP)
    removed = worker.wait_for(is_event("config.reloaded"), since=mark, what="the reload removing a secret")
    assert (removed["pairs"], removed["pairs_removed"], removed["jobs_removed"]) == (1, 1, 1)
    later = worker.mark()
    worker.wait_for(is_rotation(secret="first-pull", outcome="unchanged"), since=later, what="a later tick")
    worker.wait_for(is_rotation(secret="first-pull", outcome="unchanged"), since=worker.mark(), what="another tick")
    assert worker.matching(is_rotation(secret="second-pull"), since=later) == []
    assert eventually(lambda: worker.stop() == 0, timeout=30, what="a clean stop")
