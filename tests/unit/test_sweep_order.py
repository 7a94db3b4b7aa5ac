"""The order in which a sweep hands its rotations to the pool: in turn by target."""

from __future__ import annotations

import threading
import time

from service.engine.concurrency import interleave_by_target
from service.model import RotationKey
from tests.unit.test_sweep import World, secret


def keys(*targets: str) -> list[RotationKey]:
    return [RotationKey(target, f"secret-{index:03d}") for index, target in enumerate(targets)]


def test_every_position_comes_once() -> None:
    """The order is a permutation of the work: nothing dropped, nothing twice."""
    work = keys(*("a" * 5 + "b" * 3 + "c"))
    assert sorted(interleave_by_target(work)) == list(range(len(work)))


def test_targets_take_turns_largest_first() -> None:
    """One rotation per target per round, the target with the most rotations first in each round."""
    work = keys("a", "a", "b", "b", "b", "c")
    assert [work[i].target for i in interleave_by_target(work)] == ["b", "a", "c", "b", "a", "b"]


def test_within_a_target_the_configuration_order_is_kept() -> None:
    """A target's own rotations keep the order the configuration lists them in."""
    work = keys("a", "b", "a", "b", "a")
    order = [i for i in interleave_by_target(work) if work[i].target == "a"]
    assert order == [0, 2, 4]


def test_no_work_no_order() -> None:
    """An empty sweep has an empty order."""
    assert interleave_by_target([]) == []


def test_a_sweep_grouped_by_target_starts_every_target_at_once() -> None:
    """Secrets listed target by target: the second target's writes start before the first target's end."""
    world = World(per_target=2, targets=("eu", "us"))  # 16 threads, fewer than the 40 rotations
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    for target, store in world.stores.items():
        original = store.edit

        def slow_edit(name, config, *, _target=target, _original=original):  # type: ignore[no-untyped-def]
            with lock:
                events.append(("start", _target))
            time.sleep(0.05)
            with lock:
                events.append(("end", _target))
            return _original(name, config)

        store.edit = slow_edit  # type: ignore[method-assign]
    names = {t: [f"{t}-registry-{i:02d}" for i in range(20)] for t in world.stores}
    for target, store in world.stores.items():
        store.existing.update(names[target])
    grouped = [secret(name, targets=(target,)) for target in ("eu", "us") for name in names[target]]
    report = world.sweep(*grouped)
    world.rotator.close()
    assert [r.key.secret for r in report.results] == [s.name for s in grouped]  # reported in configuration order
    first_us = events.index(("start", "us"))
    assert events[:first_us].count(("end", "eu")) == 0
