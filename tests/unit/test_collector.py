"""``service.collector``: fewer young collections, and start-up's objects out of later ones."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import collector


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_tune_raises_only_the_young_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)


def test_settle_leaves_what_lives_now_out_of_collections() -> None:
    kept = _cycle()  # garbage already: settle's own collection frees it
    live = [_Node() for _ in range(10)]
    collector.settle()
    assert kept() is None
    assert gc.get_freeze_count() >= len(live)


def test_settle_again_collects_garbage_frozen_before() -> None:
    """A reload settles again: a replaced configuration frozen at start-up is collected then."""
    holder = [_Node(), _Node()]
    holder[0].other, holder[1].other = holder[1], holder[0]
    old = weakref.ref(holder[0])
    collector.settle()
    del holder
    gc.collect()
    assert old() is not None  # frozen: no collection sees it
    collector.settle()
    assert old() is None


ARENAS_PROGRAM = """
import ctypes, sys, threading
from service import collector
if sys.argv[1] == "capped":
    assert collector.cap_malloc_arenas(2)
barrier = threading.Barrier(8)
def work():
    kept = [bytes(2000) for _ in range(200)]  # over pymalloc's 512 bytes: glibc's malloc serves them
    barrier.wait()  # all eight alive at once: none hands its arena on to the next
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", ARENAS_PROGRAM, mode], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    return done.stderr.count("Arena ")


def test_malloc_arenas_are_capped_for_threads_started_after() -> None:
    """Eight threads that malloc get arenas of their own by default; after the cap they share two."""
    assert _arenas("default") > 2
    assert _arenas("capped") == 2


def test_an_operators_malloc_arena_max_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert collector.cap_malloc_arenas(2) is False


def _rss_kb() -> int:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def test_trim_gives_back_what_a_big_sweep_freed_between_live_chunks() -> None:
    """40 MB in heap-sized chunks, nine in ten freed: glibc keeps those pages until ``trim``."""
    chunks = [bytearray(64 * 1024) for _ in range(640)]
    for chunk in chunks:
        chunk[::4096] = b"x" * len(chunk[::4096])  # touch every page: resident
    kept = chunks[::10]  # live chunks between the freed ones: nothing coalesces to the heap's top
    del chunks
    before = _rss_kb()
    assert collector.trim()
    after = _rss_kb()
    assert before - after > 20_000, (before, after)
    assert len(kept) == 64


def test_only_a_big_sweep_trims(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    monkeypatch.setattr(collector, "trim", lambda: calls.append(None) or True)
    assert not collector.after_sweep(collector.TRIM_AFTER_ROTATIONS - 1)  # a tick of a few pairs
    assert collector.after_sweep(collector.TRIM_AFTER_ROTATIONS)
    assert len(calls) == 1
