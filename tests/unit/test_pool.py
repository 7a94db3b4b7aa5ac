"""The rotation pool's own threads: how many it starts, failures, closing, and concurrent sweeps."""

from __future__ import annotations

import random
import threading
import time

import pytest

from service.engine.concurrency import Pool
from service.model import RotationKey


def keys(count: int, *, targets: int = 1) -> list[RotationKey]:
    return [RotationKey(f"target-{index % targets}", f"secret-{index:03d}") for index in range(count)]


def prepared(positions: list[int]) -> dict[int, int]:
    return {index: index * 10 for index in positions}


def rotation_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("rotation_")]


def test_a_small_sweep_starts_only_the_threads_it_can_use() -> None:
    """One pair starts one thread, not max_concurrency (an idle worker's ticks are one pair each)."""
    before = set(rotation_threads())
    pool = Pool(max_concurrency=16, per_target=4, target_limits={})
    try:
        assert pool.map_by_target(keys(1), lambda i, value: value + 1, prepare=prepared, part=8) == [1]
        assert len(set(rotation_threads()) - before) == 1
        pool.map_by_target(keys(40, targets=4), lambda i, value: value, prepare=prepared, part=8)
        assert len(set(rotation_threads()) - before) == 16  # never more than max_concurrency
    finally:
        pool.close()
    assert set(rotation_threads()) - before == set()  # close stops them


def test_a_failing_call_is_raised_after_every_other_call_finished() -> None:
    """A call that raises does not stop the others; the caller gets the exception once all are done."""
    pool = Pool(max_concurrency=4, per_target=4, target_limits={})
    finished: list[int] = []
    lock = threading.Lock()

    def work(index: int, value: int) -> int:
        if index == 3:
            raise ValueError("position 3")
        with lock:
            finished.append(index)
        return value

    try:
        with pytest.raises(ValueError, match="position 3"):
            pool.map_by_target(keys(20, targets=2), work, prepare=prepared, part=4)
        assert sorted(finished) == [i for i in range(20) if i != 3]
        # the pool still serves after a failure
        assert pool.map_by_target(keys(3), lambda i, value: i, prepare=prepared, part=4) == [0, 1, 2]
    finally:
        pool.close()


def test_nothing_is_handed_out_after_close() -> None:
    pool = Pool(max_concurrency=2, per_target=2, target_limits={})
    assert pool.submit(lambda: "before").result(5) == "before"
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(lambda: "after")
    with pytest.raises(RuntimeError, match="closed"):
        pool.map_by_target(keys(2), lambda i, value: value, prepare=prepared, part=2)


def test_close_lets_queued_work_finish() -> None:
    """Work queued before close runs to its end; close returns after it."""
    pool = Pool(max_concurrency=1, per_target=1, target_limits={})
    gate = threading.Event()
    first = pool.submit(gate.wait)
    second = pool.submit(lambda: "second")  # queued behind the first on the one thread
    closer = threading.Thread(target=pool.close)
    closer.start()
    gate.set()
    closer.join(5)
    assert not closer.is_alive()
    assert first.result(0) is True
    assert second.result(0) == "second"


def test_two_sweeps_share_the_threads_and_each_gets_its_own_results() -> None:
    """Concurrent calls (a scheduled tick during a full sweep) interleave on the queue; results stay apart."""
    pool = Pool(max_concurrency=4, per_target=4, target_limits={})
    out: dict[str, list[int]] = {}

    def sweep(name: str, offset: int) -> None:
        out[name] = pool.map_by_target(keys(50, targets=5), lambda i, value: value + offset, prepare=prepared, part=6)

    threads = [threading.Thread(target=sweep, args=(name, offset)) for name, offset in (("a", 1), ("b", 2))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        pool.close()
    assert out["a"] == [i * 10 + 1 for i in range(50)]
    assert out["b"] == [i * 10 + 2 for i in range(50)]


def test_a_submitted_failure_reaches_its_future() -> None:
    pool = Pool(max_concurrency=2, per_target=2, target_limits={})

    def fail() -> None:
        raise KeyError("gone")

    try:
        future = pool.submit(fail)
        with pytest.raises(KeyError, match="gone"):
            future.result(5)
        assert pool.submit(lambda: 7).result(5) == 7
    finally:
        pool.close()


def test_idle_threads_leave_and_each_halving_of_the_pool_is_reported() -> None:
    """With no work for idle_exit the 8 threads leave; on_shrunk runs at 4, 2, 1 and 0; a sweep starts threads again."""
    drained = threading.Event()
    calls: list[int] = []

    def on_shrunk() -> None:
        calls.append(1)
        if len(calls) == 4:
            drained.set()

    pool = Pool(max_concurrency=8, per_target=8, target_limits={}, idle_exit=0.05, on_shrunk=on_shrunk)
    try:
        assert pool.map_by_target(keys(20), lambda i, value: value, prepare=prepared, part=4)[-1] == 190
        assert drained.wait(5)
        time.sleep(0.2)  # any further call would come now
        assert pool.threads == 0
        assert len(calls) == 4
        assert pool.map_by_target(keys(3), lambda i, value: value + 1, prepare=prepared, part=4) == [1, 11, 21]
        assert pool.submit(lambda: "again").result(timeout=5) == "again"
    finally:
        pool.close()


def test_work_handed_out_as_threads_leave_is_never_stranded() -> None:
    """Threads that leave after a millisecond idle, work arriving at random moments: every call still runs."""
    pool = Pool(max_concurrency=4, per_target=4, target_limits={}, idle_exit=0.001)
    rng = random.Random(14)
    try:
        for round_ in range(300):
            time.sleep(rng.choice((0, 0.0005, 0.001, 0.002)))
            if round_ % 2:
                assert pool.submit(lambda number=round_: number).result(timeout=5) == round_
            else:
                result = pool.map_by_target(keys(rng.randint(1, 9)), lambda i, value: value, prepare=prepared, part=2)
                assert result == [index * 10 for index in range(len(result))]
    finally:
        pool.close()
