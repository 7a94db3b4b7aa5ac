"""Several `rotator run` replicas on one config, database, Vault and AI Core: each rotation happens once."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from tests.e2e.processes import WorkerProcess, eventually, is_event, is_rotation
from tests.e2e.scene import Scene, rows_of

SECRETS = {"acme-registry": "registries/acme", "ghcr-pull": "registries/ghcr"}
TARGETS = ("tenant-a", "tenant-b")
KEYS = [(target, secret) for secret in SECRETS for target in TARGETS]
CHANGES = 2  # token changes after the first write
CHECKS_AFTER = 2  # scheduled checks of every key after the last change


def _rotations(workers: list[WorkerProcess], outcome: str, marks: dict[str, int] | None = None) -> Counter[tuple]:
    seen: Counter[tuple] = Counter()
    for worker in workers:
        since = marks[worker.name] if marks else 0
        for event in worker.matching(is_rotation(outcome=outcome), since=since):
            seen[(event["target"], event["secret"])] += 1
    return seen


def _all_written(scene: Scene, times: int) -> bool:
    return all(scene.patches(target, secret) >= times for target, secret in KEYS)


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [2, 3])
def test_each_rotation_happens_once_across_replicas(scene: Scene, replicas: int) -> None:
    """Over several periods and two token changes, every (target, secret) gets one PATCH and one intent per change."""
    for target in TARGETS:
        scene.add_tenant(target)
    for name, path in SECRETS.items():
        scene.add_secret(name, targets=list(TARGETS), path=path)
        scene.put(path)
    workers = [scene.start_worker(f"replica-{n}", env={"ROTATOR_INSTANCE": f"replica-{n}"}) for n in range(replicas)]
    for worker in workers:
        worker.wait_for(is_event("worker.started"), what="worker.started")
    eventually(lambda: _all_written(scene, 1), timeout=15, what="the first write of every key")

    for change in range(1, CHANGES + 1):
        for path in SECRETS.values():
            scene.put(path)
        eventually(lambda n=change: _all_written(scene, n + 1), timeout=10, what=f"change {change} written")
        marks = {worker.name: worker.mark() for worker in workers}
        eventually(
            lambda marks=marks: all(n >= CHECKS_AFTER for n in _checks_per_key(workers, marks)),
            timeout=15,
            what=f"{CHECKS_AFTER} scheduled checks of every key after change {change}",
        )

    for worker in workers:
        worker.send(signal.SIGTERM)
    assert [worker.wait() for worker in workers] == [0] * replicas

    writes = CHANGES + 1
    for target in TARGETS:
        patched = Counter(w.name for w in scene.emulator.inspect.writes(target))
        assert patched == dict.fromkeys(SECRETS, writes), f"{target}: {patched}"
    assert _rotations(workers, "applied") == dict.fromkeys(KEYS, writes)

    rows = scene.audit_rows()
    for target, secret in KEYS:
        intents = rows_of(rows, event="intent", target=target, secret=secret)
        applied = rows_of(rows, event="applied", target=target, secret=secret)
        assert len(intents) == len(applied) == writes, (target, secret)
        assert sorted(row["intent_seq"] for row in applied) == [row["seq"] for row in intents]
        assert len({row["fingerprint"] for row in applied}) == writes, "each change has its own fingerprint"
    assert {row["event"] for row in rows} == {"intent", "applied"}
    assert scene.open_intents() == []
    scene.rotator("audit", "verify")


def _checks_per_key(workers: list[WorkerProcess], marks: dict[str, int]) -> list[int]:
    checks = _rotations(workers, "unchanged", marks)
    return [checks[key] for key in KEYS]
