"""Deny and allow windows (as ESO's syncWindows): pure functions of the windows and ``now``.

A window opens at each fire time of its cron expression (in its time zone) and stays
open for its duration. Nothing is written inside a deny window; when allow windows are
configured, nothing is written outside all of them. ``blocked`` says until when a write
must wait, following overlapping windows to the first free moment. Cron arithmetic is
``service.scheduler``'s (the only module that imports APScheduler).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from service.scheduler import cron_start

MAX_STEPS = 1000  # overlapping windows followed before giving up (the run is then deferred again)
_TICK = timedelta(microseconds=1)


class Window(Hashable, Protocol):
    """What a window gives these functions: ``model.WindowSpec`` and ``config.WindowConfig`` both do."""

    @property
    def kind(self) -> str: ...
    @property
    def cron(self) -> str: ...
    @property
    def duration(self) -> timedelta: ...
    @property
    def timezone(self) -> str: ...
    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Span:
    """One opening of a window."""

    window: Window
    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Block:
    """Why writing waits now, and until when."""

    until: datetime
    window: Window
    outside_allow: bool = False  # no allow window is open (rather than a deny window being open)

    def describe(self) -> str:
        until = self.until.isoformat(timespec="seconds")
        if self.outside_allow:
            return f"outside every allow window; next opens at {until}"
        return f"inside deny window {self.window.cron!r} ({self.window.timezone}, {self.window.duration}) until {until}"


def span_at(window: Window, at: datetime) -> Span | None:
    """The opening of ``window`` that contains ``at`` (the earliest, if several overlap), or None."""
    start = cron_start(window.cron, window.timezone, at_or_after=at - window.duration + _TICK)
    if start is None or start > at:
        return None
    return Span(window, start, start + window.duration)


def next_span(window: Window, at: datetime) -> Span | None:
    """The opening that contains ``at``, else the next one to start."""
    current = span_at(window, at)
    if current is not None:
        return current
    start = cron_start(window.cron, window.timezone, at_or_after=at)
    return Span(window, start, start + window.duration) if start is not None else None


def _step(windows: Sequence[Window], at: datetime) -> Block | None:
    """What blocks a write at ``at`` (to the end of the open deny windows, or the next allow), or None."""
    denying = [span for w in windows if w.kind == "deny" and (span := span_at(w, at)) is not None]
    if denying:
        last = max(denying, key=lambda span: span.end)
        return Block(until=last.end, window=last.window)
    allows = [w for w in windows if w.kind == "allow"]
    if not allows or any(span_at(w, at) is not None for w in allows):
        return None
    upcoming = [span for w in allows if (span := next_span(w, at)) is not None]
    if not upcoming:
        return None  # an allow window that never opens again does not block forever
    first = min(upcoming, key=lambda span: span.start)
    return Block(until=first.start, window=first.window, outside_allow=True)


def blocked(windows: Sequence[Window], now: datetime) -> Block | None:
    """None when a write may happen at ``now``; else the first free moment and the window that holds it."""
    return _blocked(tuple(windows), now) if windows else None


@functools.lru_cache(maxsize=1024)  # a sweep asks for the same windows at the same now for each secret
def _blocked(windows: tuple[Window, ...], now: datetime) -> Block | None:
    first: Block | None = None
    at = now
    for _ in range(MAX_STEPS):
        block = _step(windows, at)
        if block is None:
            break
        first = first or block
        at = block.until
    return Block(until=at, window=first.window, outside_allow=first.outside_allow) if first else None


def upcoming(windows: Sequence[Window], now: datetime, *, count: int = 3) -> list[Span]:
    """The next ``count`` openings of each window (the open one first), in time order (``check --offline``)."""
    spans: list[Span] = []
    for window in windows:
        span = next_span(window, now)
        while span is not None and len([s for s in spans if s.window is window]) < count:
            spans.append(span)
            start = cron_start(window.cron, window.timezone, at_or_after=span.start + _TICK)
            span = Span(window, start, start + window.duration) if start is not None else None
    return sorted(spans, key=lambda span: (span.start, span.window.kind))


def summary_lines(
    global_windows: Sequence[Window], per_secret: Mapping[str, Sequence[Window]], now: datetime
) -> list[str]:
    """``check --offline``: each window and its next openings (UTC), the global ones first."""
    lines = []
    for owner, windows in [("every secret", list(global_windows)), *per_secret.items()]:
        for window in windows:
            spans = upcoming([window], now)
            when = ", ".join(f"{_utc(span.start)} to {_utc(span.end)}" for span in spans) or "never again"
            lines.append(f"  window ({owner}): {window.describe()}; next {when}")
    return lines


def _utc(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%MZ")
