"""``Once``: each key computed once per sweep; concurrent callers of the same key wait for the first.

The one once-per-source mechanism: a sweep reads each source (by ``SourceSpec.ident``, its
location and version) from Vault once and shares the credential among every pair that uses
it, and verifies each (secret, registries) once. A failure is shared too: every caller of the
key gets the same error, so one unreachable source fails its pairs without as many requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Once(Generic[K, V]):
    """``once.get(key, compute)``: the value of ``compute()`` for the first caller of ``key``, for all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[K, Future[V]] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as e:  # noqa: BLE001 (re-raised in every caller below)
                future.set_exception(e)
        return future.result()

    def __len__(self) -> int:
        return len(self._futures)
