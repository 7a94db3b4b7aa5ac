"""A ``rotator`` process under test: started, read line by line, waited on, signalled, always reaped.

``WorkerProcess`` runs ``python -m service ...`` with JSON logs, collects every line its
standard error and output carry (the JSON ones also as events) in reader threads, and
lets a test wait for an event (``wait_for``) instead of sleeping. ``eventually`` polls
any other condition (a database row, an emulator write) with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

Event = dict[str, Any]
Predicate = Callable[[Event], bool]
T = TypeVar("T")

TAIL_LINES = 40


def eventually(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        time.sleep(interval)


def is_event(name: str, **fields: Any) -> Predicate:
    """A predicate: the log event ``name`` whose fields equal ``fields``."""
    return lambda event: event.get("event") == name and all(event.get(k) == v for k, v in fields.items())


def is_rotation(**fields: Any) -> Predicate:
    """A predicate: the canonical ``rotation`` line with these fields (outcome, secret, target, trigger...)."""
    return is_event("rotation", **fields)


class WorkerProcess:
    """One ``rotator`` process; ``stop()`` (or the fixture's teardown) never leaves it running."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], cwd: Path, name: str) -> None:
        self.name = name
        self.args = list(args)
        self.started_at = time.monotonic()
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._open_streams = 2
        self.process = subprocess.Popen(
            self.args,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not the worker
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), name=f"{name}-{label}", daemon=True)
            for stream, label in ((self.process.stderr, "stderr"), (self.process.stdout, "stdout"))
        ]
        for reader in self._readers:
            reader.start()

    # --- reading ------------------------------------------------------------------

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            event = _parse(line)
            with self._changed:
                self.lines.append(line)
                if event is not None:
                    self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._open_streams -= 1
            self._changed.notify_all()

    def mark(self) -> int:
        """The number of events seen so far: pass it as ``since`` to wait for what comes next."""
        with self._changed:
            return len(self.events)

    def wait_for(self, predicate: Predicate, *, timeout: float = 20.0, since: int = 0, what: str = "") -> Event:
        """The first event from index ``since`` on that matches; fails at once if the process ends without it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            checked = since
            while True:
                for event in self.events[checked:]:
                    if predicate(event):
                        return event
                checked = max(checked, len(self.events))
                remaining = deadline - time.monotonic()
                if self._open_streams == 0 or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.5))
        why = "it ended" if self._open_streams == 0 else f"{timeout:.0f}s passed"
        raise AssertionError(f"{self.name}: {what or 'the expected event'} not seen before {why}{self.tail()}")

    def matching(self, predicate: Predicate, *, since: int = 0) -> list[Event]:
        """Every event seen so far (from ``since``) that matches."""
        with self._changed:
            return [event for event in self.events[since:] if predicate(event)]

    def text(self) -> str:
        """Every line the process wrote so far, standard error and output together."""
        with self._changed:
            return "\n".join(self.lines)

    def tail(self) -> str:
        with self._changed:
            lines = self.lines[-TAIL_LINES:]
        code = self.process.poll()
        return f" (exit code {code}); last lines of {self.name}:\n" + "\n".join(lines)

    # --- lifecycle ------------------------------------------------------------------

    def http_url(self, *, timeout: float = 20.0) -> str:
        """The base URL of the worker's probes (``http.listen`` may give port 0)."""
        return str(self.wait_for(is_event("http.listening"), timeout=timeout, what="http.listening")["address"])

    def send(self, signum: int) -> None:
        """Send a signal (SIGTERM, SIGINT, SIGKILL...) to the process."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit and for the last line to be read; the exit code."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs after {timeout:.0f}s{self.tail()}") from None
        self._finish_reading()
        return code

    def stop(self, signum: int = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Signal and wait; the exit code."""
        if self.process.poll() is None:
            self.send(signum)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (if still running) and reap; never fails."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._finish_reading()

    def _finish_reading(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None and not any(reader.is_alive() for reader in self._readers):
                stream.close()


def _parse(line: str) -> Event | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
