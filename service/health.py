"""Pure health decisions of the worker: is it making progress, is a pair stale, how long to wait.

Nothing here reads a clock or does I/O: the worker passes ``now`` and what it observed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from service.model import RotationState


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """What the worker observed of itself: the last maintenance tick, and since when it has been stuck."""

    heartbeat_at: datetime | None  # the last run of the maintenance job (the scheduler fires jobs)
    stuck_since: datetime | None  # the instance lock cannot be taken although the database answers


def liveness(progress: Progress, *, now: datetime, timeout: timedelta) -> str | None:
    """Why the worker is not alive (``/livez`` fails and Kubernetes restarts it), or None.

    A dependency that is down is not a reason: restarting would not bring it back, and the
    worker resumes by itself when it answers. A scheduler that no longer fires its jobs, or
    an instance lock that cannot be taken back while the database answers, is.
    """
    if progress.heartbeat_at is not None and now - progress.heartbeat_at > timeout:
        return f"the scheduler has not run its maintenance job for {_seconds(now - progress.heartbeat_at)}"
    if progress.stuck_since is not None and now - progress.stuck_since > timeout:
        return f"the instance lock could not be taken for {_seconds(now - progress.stuck_since)}"
    return None


def stale(state: RotationState | None, *, now: datetime, allowance: timedelta) -> bool:
    """A pair whose last success is older than its schedule allows, or whose credential has expired.

    ``allowance`` is the schedule's period plus the misfire grace: one missed run plus the time a
    late run may take. A pair that never succeeded is stale: it has never been written.
    """
    if state is None or state.last_success_at is None:
        return True
    if state.credential_expires_at is not None and state.credential_expires_at <= now:
        return True
    return now - state.last_success_at > allowance


def wait_delay(attempt: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """Capped exponential backoff while a dependency is down at start-up: base, 2 base, 4 base, ... cap."""
    delay: timedelta = base * 2 ** max(attempt - 1, 0)
    return min(cap, delay)


def _seconds(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"
