"""``Once``: each key computed once per sweep; concurrent callers of the same key wait for the first.

The one once-per-source mechanism: a sweep reads each source (by ``SourceSpec.ident``, its
location and version) from Vault once and shares the credential among every pair that uses
it, and verifies each (secret, registries) once. A failure is shared too: every caller of the
key gets the same error, so one unreachable source fails its pairs without as many requests.

Most keys have one caller (a source per secret, a window check per secret): the first caller
computes without a ``Future`` or an ``Event`` (each a ``Condition`` and locks: about a tenth
of an unchanged rotation's engine CPU). A caller that finds the key being computed makes the
``Event`` it waits on; the computing caller sets it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_Done = tuple[bool, object]  # (succeeded, the value or the exception)


class Once(Generic[K, V]):
    """``once.get(key, compute)``: the value of ``compute()`` for the first caller of ``key``, for all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[K, _Done] = {}
        self._running: dict[K, threading.Event | None] = {}  # the Event, once a second caller waits

    def get(self, key: K, compute: Callable[[], V]) -> V:
        done = self._done.get(key)
        if done is None:
            done = self._computed(key, compute)
        succeeded, value = done
        if not succeeded:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]  # compute()'s value, stored as object

    def _computed(self, key: K, compute: Callable[[], V]) -> _Done:
        with self._lock:
            done = self._done.get(key)
            if done is not None:
                return done
            owner = key not in self._running
            if owner:
                self._running[key] = None
            else:
                event = self._running[key] or threading.Event()
                self._running[key] = event
        if not owner:
            event.wait()
            return self._done[key]
        try:
            done = (True, compute())
        except BaseException as e:  # noqa: BLE001 (raised again in every caller of the key)
            done = (False, e)
        with self._lock:
            self._done[key] = done
            waiting = self._running.pop(key)
        if waiting is not None:
            waiting.set()
        return done

    def __len__(self) -> int:
        with self._lock:
            return len(self._done) + len(self._running)
