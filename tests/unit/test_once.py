"""``Once``: each key computed once per sweep, its value or its error shared by every caller."""

from __future__ import annotations

import threading
import time

import pytest

from service.engine.once import Once


def _call_from_threads(once: Once[str, int], key: str, compute: object, count: int) -> list[object]:
    """``once.get(key, compute)`` from ``count`` threads at once; each thread's value or exception."""
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def call(i: int) -> None:
        start.wait()
        try:
            results[i] = once.get(key, compute)  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 (the test compares what each caller got)
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a caller never got its answer"
    return results


def test_concurrent_callers_of_one_key_share_one_computation() -> None:
    once: Once[str, int] = Once()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.05)  # the other callers arrive while it runs, and wait
        return 42

    assert _call_from_threads(once, "source", compute, 8) == [42] * 8
    assert len(calls) == 1
    assert once.get("source", lambda: pytest.fail("computed twice")) == 42
    assert len(once) == 1


def test_a_failure_is_shared_by_every_caller_and_not_computed_again() -> None:
    once: Once[str, int] = Once()
    calls: list[int] = []
    error = RuntimeError("vault unreachable")

    def compute() -> int:
        calls.append(1)
        time.sleep(0.05)
        raise error

    assert _call_from_threads(once, "source", compute, 8) == [error] * 8
    assert len(calls) == 1
    with pytest.raises(RuntimeError, match="vault unreachable"):
        once.get("source", lambda: pytest.fail("computed twice"))


def test_keys_are_computed_on_their_own() -> None:
    once: Once[str, str] = Once()
    assert once.get("a", lambda: "A") == "A"
    assert once.get("b", lambda: "B") == "B"
    assert once.get("a", lambda: "other") == "A"
    assert len(once) == 2
