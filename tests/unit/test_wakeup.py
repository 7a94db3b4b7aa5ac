"""The main thread's sleep ends at once on a signal or a wake() from another thread, and lasts otherwise."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from service.wakeup import Wakeup


@pytest.fixture
def wakeup() -> Iterator[Wakeup]:
    """A Wakeup installed as the process's signal wakeup fd, given back afterwards."""
    pipe = Wakeup()
    pipe.install()
    yield pipe
    pipe.close()


def test_a_signal_ends_the_wait_after_its_handler_ran(wakeup: Wakeup) -> None:
    """SIGUSR1 sent from another thread mid-wait: wait(30) returns well before 30 s, the handler's flag set."""
    seen: list[int] = []

    def handler(signum: int, _: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGUSR1)).start()
        started = time.monotonic()
        wakeup.wait(30)
        assert time.monotonic() - started < 10
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_wake_from_another_thread_ends_the_wait_and_is_consumed(wakeup: Wakeup) -> None:
    """wake() ends a wait(30) early; the next wait is not cut short by the same wake."""
    threading.Timer(0.2, wakeup.wake).start()
    started = time.monotonic()
    wakeup.wait(30)
    assert time.monotonic() - started < 10
    started = time.monotonic()
    wakeup.wait(0.3)
    assert time.monotonic() - started >= 0.25


def test_a_wake_before_the_wait_is_not_lost(wakeup: Wakeup) -> None:
    """A wake (or a signal) that came while the thread was busy makes the next wait return at once."""
    for _ in range(100_000):  # more than the pipe holds (64 KiB): extra wakes are dropped, never block
        wakeup.wake()
    started = time.monotonic()
    wakeup.wait(30)
    assert time.monotonic() - started < 10


def test_close_gives_the_wakeup_fd_back() -> None:
    """After close, signal delivery writes to what it wrote to before (here: nothing)."""
    pipe = Wakeup()
    pipe.install()
    pipe.close()
    assert signal.set_wakeup_fd(-1) == -1
