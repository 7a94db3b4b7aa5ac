"""The worker's pure health decisions: liveness, staleness and start-up backoff, all at a fixed `now`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.health import Progress, liveness, stale, wait_delay
from service.model import RotationKey, RotationState
from tests.fakes import NOW

KEY = RotationKey("eu", "reg-000")
TIMEOUT = timedelta(minutes=2)


def test_alive_while_maintenance_runs_and_the_lock_is_held() -> None:
    """A recent heartbeat and no stuck lock: alive."""
    assert (
        liveness(Progress(heartbeat_at=NOW - timedelta(seconds=3), stuck_since=None), now=NOW, timeout=TIMEOUT) is None
    )


def test_a_wedged_scheduler_is_not_alive() -> None:
    """No maintenance tick for longer than the bound: /livez fails, naming the reason."""
    problem = liveness(Progress(heartbeat_at=NOW - timedelta(minutes=3), stuck_since=None), now=NOW, timeout=TIMEOUT)
    assert problem == "the scheduler has not run its maintenance job for 180s"


def test_a_lock_that_cannot_be_taken_back_is_not_alive_after_the_bound() -> None:
    """Stuck for less than the bound is tolerated; past it, /livez fails so Kubernetes restarts the pod."""
    recent = Progress(heartbeat_at=NOW, stuck_since=NOW - timedelta(seconds=30))
    assert liveness(recent, now=NOW, timeout=TIMEOUT) is None
    old = Progress(heartbeat_at=NOW, stuck_since=NOW - timedelta(minutes=5))
    assert liveness(old, now=NOW, timeout=TIMEOUT) == "the instance lock could not be taken for 300s"


@pytest.mark.parametrize(
    ("success_ago", "expires_in", "is_stale"),
    [
        (None, None, True),  # never written
        (timedelta(hours=5), None, False),
        (timedelta(hours=6, minutes=11), None, True),  # past period + grace
        (timedelta(minutes=1), -timedelta(seconds=1), True),  # the credential itself expired
        (timedelta(minutes=1), timedelta(hours=1), False),
    ],
)
def test_stale_when_the_last_success_is_older_than_the_schedule_allows(
    success_ago: timedelta | None, expires_in: timedelta | None, is_stale: bool
) -> None:
    """Stale: never succeeded, last success older than the allowance, or an expired credential."""
    state = RotationState(
        key=KEY,
        last_success_at=None if success_ago is None else NOW - success_ago,
        credential_expires_at=None if expires_in is None else NOW + expires_in,
    )
    assert stale(state, now=NOW, allowance=timedelta(hours=6, minutes=10)) is is_stale


def test_a_pair_without_state_is_stale() -> None:
    """No state row at all (never rotated by anyone) counts as stale."""
    assert stale(None, now=NOW, allowance=timedelta(hours=1)) is True


def test_start_up_wait_doubles_up_to_the_cap() -> None:
    """1 s, 2 s, 4 s, ... never more than the cap."""
    delays = [wait_delay(n, base=timedelta(seconds=1), cap=timedelta(seconds=30)).total_seconds() for n in range(1, 8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30]
