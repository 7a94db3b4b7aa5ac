"""The pool that bounds a sweep's concurrency: in total, per target, and the order work is handed to it.

Work is handed out in parts, each prepared (e.g. its leases claimed and states loaded, in one
round trip for the whole part) just before the pool needs it: a part is prepared when fewer
than half the pool's threads' worth of work is still waiting to start, so a thread seldom
waits for a preparation and nothing prepared waits long for a thread.

The threads are the pool's own, serving one queue in arrival order (concurrent sweeps
interleave as their parts arrive). A handed-out rotation is a tuple on that queue, not a
``Future``: ``ThreadPoolExecutor.submit`` costs a ``Future`` (a ``Condition`` and its lock),
a work item and a ``Semaphore`` probe per call, which in a sweep of 5,000 rotations was about
a tenth of the engine's own CPU (``bench/engine.py``, docs/performance.md).

A thread that has found no work for ``idle_exit`` seconds leaves, and ``on_shrunk`` is called
each time the pool is down to half the threads it had when it was last called (or grew since):
64, then 32, 16, ... 1, 0. Each thread that ever ran keeps glibc's per-thread cache of freed
chunks: after a catch-up sweep, 64 idle threads held about 7 MB of an idle worker's RSS that
way (docs/performance.md, tenth round); the worker gives it back to the system
(``collector.trim``) as they leave. The few threads an idle worker's ticks keep busy stay. A
sweep starts the threads it needs again.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

from service.model import RotationKey

T = TypeVar("T")
P = TypeVar("P")

_Task = tuple[Callable[..., None], tuple[Any, ...]]

IDLE_EXIT = 30.0  # seconds a pool thread waits for work before it leaves


class Pool:
    """``max_concurrency`` rotation threads; at most a target's limit of calls to one AI Core tenant at once."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        per_target: int,
        target_limits: Mapping[str, int],
        idle_exit: float = IDLE_EXIT,
        on_shrunk: Callable[[], object] | None = None,
    ) -> None:
        self._threads = max_concurrency
        self._idle_exit = idle_exit
        self._on_shrunk = on_shrunk
        self._reported = 0  # the thread count when on_shrunk was last called, or the most since
        self._per_target = per_target
        self._limits = dict(target_limits)
        self._slots_lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._tasks: SimpleQueue[_Task | None] = SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._names = itertools.count()  # threads come and go: each gets a name of its own
        self._workers_lock = threading.Lock()
        self._submitted = 0  # ``submit`` calls not finished yet: the threads they need
        self._closed = False

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
        Results come back in ``keys`` order; an exception from ``work`` is raised here once
        every handed-out call has finished.
        """
        if not keys:
            return []
        order = interleave_by_target(keys)
        batch: _Batch[P, T] = _Batch(work, total=len(keys))
        for at in range(0, len(order), max(part, 1)):
            batch.until_waiting_at_most(self._threads // 2)
            positions = order[at : at + part]
            prepared = prepare(positions)
            batch.handed_out(len(positions))
            self._put([(batch.run, (index, prepared[index])) for index in positions], wanted=len(keys) - at)
        return batch.results()

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """``work()`` on one of the pool's threads, its result (or exception) in the returned future."""
        future: Future[T] = Future()
        with self._workers_lock:
            self._submitted += 1
            wanted = self._submitted
        self._put([(self._run_submitted, (future, work))], wanted=wanted)
        return future

    def _run_submitted(self, future: Future[T], work: Callable[[], T]) -> None:
        try:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except BaseException as e:  # noqa: BLE001 (handed to the caller through the future)
                    future.set_exception(e)
        finally:
            with self._workers_lock:
                self._submitted -= 1

    def slot(self, target: str) -> threading.BoundedSemaphore:
        """The semaphore that bounds calls to one target (``with pool.slot(target): ...``)."""
        with self._slots_lock:
            if target not in self._slots:
                self._slots[target] = threading.BoundedSemaphore(self._limits.get(target, self._per_target))
            return self._slots[target]

    def close(self) -> None:
        """Let the queued work finish, then stop the threads."""
        with self._workers_lock:
            self._closed = True
            workers = list(self._workers)
        for _ in workers:
            self._tasks.put(None)
        for worker in workers:
            worker.join()

    def _put(self, tasks: list[_Task], *, wanted: int) -> None:
        """Start threads until there are ``wanted`` (at most ``max_concurrency``), then queue ``tasks``.

        Both under the lock a leaving thread takes to see that the queue is empty, so work is
        never queued for threads that have just left. Raises if the pool is closed (nothing
        queued after ``close`` would run).
        """
        with self._workers_lock:
            if self._closed:
                raise RuntimeError("the rotation pool is closed")
            while len(self._workers) < min(wanted, self._threads):
                worker = threading.Thread(target=self._serve, name=f"rotation_{next(self._names)}", daemon=True)
                worker.start()
                self._workers.append(worker)
            self._reported = max(self._reported, len(self._workers))
            for task in tasks:
                self._tasks.put(task)

    def _serve(self) -> None:
        while True:
            try:
                task = self._tasks.get(timeout=self._idle_exit)
            except Empty:
                if self._leave():
                    return
                continue
            if task is None:
                return
            call, args = task
            call(*args)
            # An idle thread keeps no reference to its last task: the sweep's scope (and the
            # credentials it read) must go when the sweep returns (tests/unit/security).
            del task, call, args

    def _leave(self) -> bool:
        """Whether this idle thread leaves: yes unless work arrived meanwhile. It may call ``on_shrunk``."""
        with self._workers_lock:
            if not self._tasks.empty():
                return False
            self._workers.remove(threading.current_thread())
            shrunk = len(self._workers) <= self._reported // 2
            if shrunk:
                self._reported = len(self._workers)
        if shrunk and self._on_shrunk is not None:
            self._on_shrunk()
        return True

    @property
    def threads(self) -> int:
        """How many threads the pool has now."""
        with self._workers_lock:
            return len(self._workers)


class _Batch(Generic[P, T]):
    """One ``map_by_target`` call: its results by position, and how many calls wait to start or to end."""

    def __init__(self, work: Callable[[int, P], T], *, total: int) -> None:
        self._work = work
        self._results: dict[int, T] = {}
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._waiting = 0  # handed out, not started
        self._wanted = -1  # the count the feeder waits for (-1: nobody waits)
        self._room = threading.Event()
        self._total = total
        self._finished = itertools.count(1)  # next() is atomic: the call that draws ``total`` was the last
        self._done = threading.Event()

    def handed_out(self, count: int) -> None:
        with self._lock:
            self._waiting += count

    def until_waiting_at_most(self, count: int) -> None:
        with self._lock:
            if self._waiting <= count:
                return
            self._wanted = count
            self._room.clear()
        self._room.wait()

    def run(self, index: int, prepared: P) -> None:
        with self._lock:
            self._waiting -= 1
            if self._waiting == self._wanted:
                self._wanted = -1
                self._room.set()
        try:
            self._results[index] = self._work(index, prepared)
        except BaseException as e:  # noqa: BLE001 (raised again in the caller's thread)
            self._failure = self._failure or e
        finally:
            if next(self._finished) == self._total:
                self._done.set()

    def results(self) -> list[T]:
        self._done.wait()
        if self._failure is not None:
            raise self._failure
        return [self._results[index] for index in range(self._total)]


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
