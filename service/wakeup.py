"""What the worker's main thread sleeps on: a pipe that signals (``signal.set_wakeup_fd``) and ``wake()`` write to.

Python runs a signal handler on the main thread only when that thread runs bytecode, so the
worker used to poll every 100 ms to notice SIGTERM, SIGINT or SIGHUP: 600 wake-ups a minute,
about 0.09% of a core, a sixth of the idle worker's budget. With the wakeup fd, the C-level
handler writes the signal's number to the pipe and ``select`` returns at once; the Python
handler has run by the time it does (PEP 475 retries the interrupted call after it).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal


class Wakeup:
    """A self-pipe: ``wait`` sleeps until a timeout, a signal, or ``wake()`` from any thread."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)  # set_wakeup_fd requires it; a full pipe is already awake
        self._previous: int | None = None

    def install(self) -> None:
        """Make signal delivery write to the pipe (main thread only, like ``signal.signal``)."""
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def wait(self, seconds: float) -> None:
        """Return after ``seconds``, or sooner when a signal arrived or ``wake()`` was called since the last wait."""
        readable, _, _ = select.select([self._read], [], [], max(seconds, 0.0))
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 512):
                    pass

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"\0")

    def close(self) -> None:
        """Give signal delivery back to what it wrote to before, and close the pipe."""
        if self._previous is not None:
            signal.set_wakeup_fd(self._previous)
            self._previous = None
        os.close(self._read)
        os.close(self._write)
