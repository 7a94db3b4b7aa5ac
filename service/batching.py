"""Group commit: concurrent callers share one call of a batch function.

The rotations of a sweep run in many threads; each claims a lease, appends an intent,
appends an outcome and saves its state. Done one by one, the audit chain (whose appends
are serialised) would make a thousand rotations a thousand transactions in a row.
``Batcher`` lets each thread write as if alone while the writes that arrive together
go to the database as one transaction: the first caller becomes the leader, flushes
everything pending, and hands each caller its own result (or the batch's error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    """One caller's item and, once its batch ran, its result or the batch's error.

    The caller waits on a lock the slot holds from birth and the leader releases: one
    C-level lock per call, where an ``Event`` is a ``Condition`` with a lock of its own and
    a waiter lock made at each wait (a batched call was three of them).
    """

    __slots__ = ("_ready", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self._ready = threading.Lock()
        self._ready.acquire()
        self.result: R | None = None
        self.error: BaseException | None = None

    def done(self) -> None:
        """Hand the result (or error) over: wakes the caller, once."""
        self._ready.release()

    def wait(self) -> None:
        self._ready.acquire()


class Batcher(Generic[T, R]):
    """``batcher(item)`` returns ``flush([..., item, ...])[i]``, batching concurrent calls."""

    def __init__(self, flush: Callable[[list[T]], Sequence[R]], *, max_batch: int = 500) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Slot[T, R]] = []
        self._leading = False

    def __call__(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        slot.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # set by the leader before done

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if not batch:
                    self._leading = False
                    return
            self._run(batch)

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = self._flush([slot.item for slot in batch])
            for slot, result in zip(batch, results, strict=True):  # a short result list is a bug: it raises
                slot.result = result
        except BaseException as e:  # noqa: BLE001 (handed to every caller of the batch, re-raised there)
            for slot in batch:
                slot.error = e
        for slot in batch:
            slot.done()
