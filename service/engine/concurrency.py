"""The pool that bounds a sweep's concurrency: in total, per target, and the order work is handed to it.

Work is handed out in parts, each prepared (e.g. its leases claimed and states loaded, in one
round trip for the whole part) just before the pool needs it: a part is prepared when fewer
than half the pool's threads' worth of work is still waiting to start, so a thread seldom
waits for a preparation and nothing prepared waits long for a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from service.model import RotationKey

T = TypeVar("T")
P = TypeVar("P")


class Pool:
    """``max_concurrency`` rotation threads; at most a target's limit of calls to one AI Core tenant at once."""

    def __init__(self, *, max_concurrency: int, per_target: int, target_limits: Mapping[str, int]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="rotation")
        self._threads = max_concurrency
        self._per_target = per_target
        self._limits = dict(target_limits)
        self._slots_lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def map_by_target(
        self,
        keys: Sequence[RotationKey],
        work: Callable[[int, P], T],
        *,
        prepare: Callable[[list[int]], Mapping[int, P]],
        part: int,
    ) -> list[T]:
        """``work(i, prepared[i])`` for every position of ``keys``, handed out in turn by target.

        ``prepare(positions)`` runs in the caller's thread for each part of at most ``part``
        positions, in the order they are handed out, just before the pool needs them; an
        exception from it propagates (prepare should turn its failures into values).
        Results come back in ``keys`` order.
        """
        order = interleave_by_target(keys)
        futures: dict[int, Future[T]] = {}
        waiting = _Waiting()
        for at in range(0, len(order), max(part, 1)):
            waiting.until_at_most(self._threads // 2)
            positions = order[at : at + part]
            prepared = prepare(positions)
            for index in positions:
                waiting.add()
                futures[index] = self._executor.submit(waiting.started(work), index, prepared[index])
        return [futures[index].result() for index in range(len(keys))]

    def submit(self, work: Callable[[], T]) -> Future[T]:
        return self._executor.submit(work)

    def slot(self, target: str) -> threading.BoundedSemaphore:
        """The semaphore that bounds calls to one target (``with pool.slot(target): ...``)."""
        with self._slots_lock:
            if target not in self._slots:
                self._slots[target] = threading.BoundedSemaphore(self._limits.get(target, self._per_target))
            return self._slots[target]

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def interleave_by_target(keys: Sequence[RotationKey]) -> list[int]:
    """Positions of ``keys`` taken one target at a time, largest target first.

    The pool's threads then spread over every target instead of queueing on the
    per-target slots of whichever target the configuration lists first.
    """
    by_target: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        by_target.setdefault(key.target, []).append(index)
    queues = sorted(by_target.values(), key=len, reverse=True)
    rounds = len(queues[0]) if queues else 0
    return [queue[turn] for turn in range(rounds) for queue in queues if turn < len(queue)]


class _Waiting:
    """How many handed-out calls have not started yet; the feeder waits for it to drop."""

    def __init__(self) -> None:
        self._count = 0
        self._wanted = -1  # the count the feeder waits for (-1: nobody waits)
        self._changed = threading.Condition()

    def add(self) -> None:
        with self._changed:
            self._count += 1

    def until_at_most(self, count: int) -> None:
        with self._changed:
            self._wanted = count
            self._changed.wait_for(lambda: self._count <= count)
            self._wanted = -1

    def started(self, work: Callable[[int, P], T]) -> Callable[[int, P], T]:
        def run(index: int, prepared: P) -> T:
            with self._changed:
                self._count -= 1
                if self._count <= self._wanted:
                    self._changed.notify()
            return work(index, prepared)

        return run
