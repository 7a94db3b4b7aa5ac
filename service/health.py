"""Pure health decisions of the worker: is it making progress, is a pair stale, how long to wait.

Nothing here reads a clock or does I/O: the worker passes ``now`` and what it observed.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.model import RotationKey, RotationState

ALWAYS = datetime.min.replace(tzinfo=UTC)  # the stale-from moment of a pair that never succeeded


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


def stale_from(state: RotationState | None, *, allowance: timedelta) -> datetime:
    """The first moment at which ``stale(state, now=moment, allowance=allowance)`` holds; it holds ever after.

    Nothing but a new state makes a stale pair fresh again, so the worker keeps this moment per
    pair and compares it with ``now`` instead of judging every state on every pass.
    """
    if state is None or state.last_success_at is None:
        return ALWAYS
    aged = state.last_success_at + allowance + timedelta(microseconds=1)  # stale once strictly older
    expires = state.credential_expires_at
    return aged if expires is None else min(aged, expires)


class StaleWatch:
    """Each configured pair's stale flag, kept from the states that changed rather than from all of them.

    ``reset`` takes every configured pair with its allowance and a read of every state;
    ``update`` takes only states that changed since; ``changed`` says which flags differ from
    what it said last. A pair turns stale as time passes (``stale_from``), fresh only by a new state.

    ``changed`` looks only at pairs whose state or allowance changed since it last answered and
    at those whose stale-from moment has passed (a heap of the moments of pairs said fresh), so
    a pass over 5,000 quiet pairs costs next to nothing; ``reset`` looks at every pair.

    A pair is its position in configuration order: the lists hold one slot per pair, and the
    keys handed back are the ones ``reset`` was given. A state's own key (read from the
    database, with its own strings) is only looked up, never kept: in the dicts and heap this
    replaced, such keys were about 1 MB of an idle worker with 5,000 pairs.
    """

    def __init__(self) -> None:
        self._keys: list[RotationKey] = []  # configuration order, the order changes are said in
        self._position: dict[RotationKey, int] = {}
        self._allowance: list[timedelta] = []
        self._stale_from: list[datetime] = []
        self._said: list[bool | None] = []  # None: nothing said yet
        self._dirty: set[int] = set()  # stale-from moment (or allowance) new since the last answer
        self._turning: list[tuple[datetime, int]] = []  # said fresh: when each turns stale

    def reset(self, allowances: Mapping[RotationKey, timedelta], states: Mapping[RotationKey, RotationState]) -> None:
        """Every configured pair (the keys of ``allowances``) from a read of every state; others are forgotten."""
        said = dict(zip(self._keys, self._said, strict=True))
        self._keys = list(allowances)
        self._position = {key: index for index, key in enumerate(self._keys)}
        self._allowance = list(allowances.values())
        self._stale_from = [stale_from(states.get(key), allowance=a) for key, a in allowances.items()]
        self._said = [said.get(key) for key in self._keys]
        self._dirty = set(range(len(self._keys)))
        self._turning = []

    def update(self, states: Mapping[RotationKey, RotationState]) -> None:
        """States that changed since the last read; pairs no longer configured are ignored."""
        for key, state in states.items():
            position = self._position.get(key)
            if position is not None:
                self._stale_from[position] = stale_from(state, allowance=self._allowance[position])
                self._dirty.add(position)

    def changed(self, *, now: datetime) -> list[tuple[RotationKey, bool]]:
        """The pairs whose flag at ``now`` differs from the one last returned (all of them the first time)."""
        looked_at = self._dirty
        self._dirty = set()
        while self._turning and self._turning[0][0] <= now:
            moment, position = heapq.heappop(self._turning)
            if self._stale_from[position] == moment:  # else superseded: a newer state moved it
                looked_at.add(position)
        changes = []
        for position in sorted(looked_at):
            moment = self._stale_from[position]
            flag = now >= moment
            if self._said[position] is not flag:
                self._said[position] = flag
                changes.append((self._keys[position], flag))
            if not flag:
                heapq.heappush(self._turning, (moment, position))
        return changes


def wait_delay(attempt: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """Capped exponential backoff while a dependency is down at start-up: base, 2 base, 4 base, ... cap."""
    delay: timedelta = base * 2 ** max(attempt - 1, 0)
    return min(cap, delay)


def _seconds(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"
