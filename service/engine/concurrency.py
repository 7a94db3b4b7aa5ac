"""The pool that bounds a sweep's concurrency: in total, per target, and the order work is handed to it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from service.model import RotationKey

T = TypeVar("T")


class Pool:
    """``max_concurrency`` rotation threads; at most a target's limit of calls to one AI Core tenant at once."""

    def __init__(self, *, max_concurrency: int, per_target: int, target_limits: Mapping[str, int]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="rotation")
        self._per_target = per_target
        self._limits = dict(target_limits)
        self._slots_lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def map_by_target(self, keys: Sequence[RotationKey], work: Callable[[int], T]) -> list[T]:
        """``work(i)`` for every position of ``keys``, handed out in turn by target; results in ``keys`` order."""
        futures: dict[int, Future[T]] = {}
        for index in interleave_by_target(keys):
            futures[index] = self._executor.submit(work, index)
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
