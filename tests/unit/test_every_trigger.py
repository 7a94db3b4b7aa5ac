"""``EveryTrigger``: the fire times ``GridTrigger`` over APScheduler's ``IntervalTrigger`` gave, from one object.

A differential test: for any phase, period and moment, both give the same next fire time,
and a run of fire times steps by exactly one period.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import given
from hypothesis import strategies as st

from service.scheduler import EPOCH, EveryTrigger, GridTrigger, phase

periods = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)).map(
    lambda d: timedelta(seconds=int(d.total_seconds()))  # config durations are whole seconds or more
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


def interval_grid(start: datetime, period: timedelta) -> GridTrigger:
    return GridTrigger(IntervalTrigger(seconds=period.total_seconds(), start_date=start, timezone=UTC))


@given(name=st.text(min_size=4, max_size=20), period=periods, now=moments)
def test_the_next_fire_time_is_the_interval_triggers(name: str, period: timedelta, now: datetime) -> None:
    start = EPOCH + phase(name, period)
    assert EveryTrigger(start, period).get_next_fire_time(None, now) == interval_grid(start, period).get_next_fire_time(
        None, now
    )


@given(name=st.text(min_size=4, max_size=20), period=periods, now=moments)
def test_runs_step_by_one_period_from_the_first_at_or_after_now(name: str, period: timedelta, now: datetime) -> None:
    start = EPOCH + phase(name, period)
    trigger = EveryTrigger(start, period)
    first = trigger.get_next_fire_time(None, now)
    assert first is not None
    assert now <= first < now + period
    assert (first - start) % period == timedelta(0)
    second = trigger.get_next_fire_time(first, now)
    assert second == first + period


def test_before_its_start_it_fires_at_the_start() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert EveryTrigger(start, timedelta(hours=6)).get_next_fire_time(None, start - timedelta(days=3)) == start


def test_jitter_is_added_to_the_grid_point_alone() -> None:
    start, period = EPOCH, timedelta(hours=1)
    trigger = EveryTrigger(start, period, jitter=60)
    now = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)
    for _ in range(50):
        fire = trigger.get_next_fire_time(None, now)
        assert fire is not None
        grid = datetime(2026, 12, 3, 13, tzinfo=UTC)
        assert grid <= fire <= grid + timedelta(seconds=60)
