"""The order in which a sweep hands its rotations to the pool: in turn by target."""

from __future__ import annotations

import threading
import time

from service.engine.concurrency import Pool, interleave_by_target
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


# --- parts prepared just in time -------------------------------------------------------------


def test_parts_are_prepared_in_hand_out_order_and_at_most_part_long() -> None:
    """Every position is prepared once, in parts of at most ``part``, in the order the pool hands them out."""
    pool = Pool(max_concurrency=4, per_target=4, target_limits={})
    work = keys(*("ab" * 11))
    parts: list[list[int]] = []

    def prepare(positions: list[int]) -> dict[int, str]:
        parts.append(positions)
        return {i: f"ticket-{i}" for i in positions}

    try:
        results = pool.map_by_target(work, lambda i, ticket: (i, ticket), prepare=prepare, part=8)
    finally:
        pool.close()
    assert results == [(i, f"ticket-{i}") for i in range(len(work))]
    assert [len(part) for part in parts] == [8, 8, 6]
    assert [i for part in parts for i in part] == interleave_by_target(work)


def test_a_part_is_prepared_only_once_the_pool_has_room() -> None:
    """While the threads are busy, the next part waits: at most half the threads' worth waits to start."""
    pool = Pool(max_concurrency=2, per_target=2, target_limits={})
    release = threading.Event()
    waiting_at_prepare: list[int] = []
    started = []
    lock = threading.Lock()

    def prepare(positions: list[int]) -> dict[int, None]:
        with lock:  # handed out so far (two per part) minus started: waiting to start
            waiting_at_prepare.append(2 * len(parts_done) - len(started))
        parts_done.append(positions)
        return dict.fromkeys(positions)

    def work(index: int, _: None) -> int:
        with lock:
            started.append(index)
        release.wait(5)
        return index

    parts_done: list[list[int]] = []
    feeder = threading.Thread(
        target=lambda: pool.map_by_target(keys(*"a" * 6), work, prepare=prepare, part=2), daemon=True
    )
    feeder.start()
    time.sleep(0.3)
    assert len(parts_done) == 2  # the first part runs on both threads, the second waits for one
    release.set()
    feeder.join(5)
    pool.close()
    assert len(parts_done) == 3
    assert all(count <= 1 for count in waiting_at_prepare)  # never more than threads // 2 waiting to start
