"""Which schedules would never rotate in practice: a pure decision on the schedule and a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.config import ScheduleConfig
from service.scheduler import reach_problem

NOW = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_a_cron_no_date_matches_never_runs(cron: str) -> None:
    """30 February and 31 April do not exist: the schedule never runs."""
    assert reach_problem(ScheduleConfig(cron=cron), now=NOW) == "never runs: no date matches it"


def test_a_leap_day_cron_is_more_than_a_year_away() -> None:
    """From December 2026 the next 29 February is in 2028, more than a year away."""
    problem = reach_problem(ScheduleConfig(cron="0 0 29 2 *"), now=NOW)
    assert problem == "next run 2028-02-29T00:00Z is more than a year away"


def test_a_leap_day_cron_is_refused_even_when_its_next_run_is_close() -> None:
    """Just before a leap day the next run is near, but the one after is four years later."""
    problem = reach_problem(ScheduleConfig(cron="0 0 29 2 *"), now=datetime(2028, 2, 1, tzinfo=UTC))
    assert problem == "runs less than once a year (next 2028-02-29T00:00Z, then 2032-02-29T00:00Z)"


@pytest.mark.parametrize("now", [NOW, datetime(2027, 1, 1, 0, 1, tzinfo=UTC), datetime(2028, 1, 1, 0, 1, tzinfo=UTC)])
def test_a_yearly_cron_is_accepted_across_leap_years(now: datetime) -> None:
    """Once a year on 1 January passes on any day, leap years (366 days) included."""
    assert reach_problem(ScheduleConfig(cron="0 0 1 1 *"), now=now) is None


def test_a_yearly_cron_in_a_time_zone_with_summer_time_is_accepted() -> None:
    """A yearly run in a zone that shifts by an hour twice a year is still once a year."""
    schedule = ScheduleConfig(cron="30 2 29 3 *", timezone="Europe/Berlin")
    assert reach_problem(schedule, now=datetime(2027, 3, 29, 1, tzinfo=UTC)) is None


def test_a_cron_is_read_in_its_own_time_zone() -> None:
    """The next run is computed in the schedule's time zone and shown in UTC."""
    schedule = ScheduleConfig(cron="0 0 29 2 *", timezone="Asia/Tokyo")
    assert reach_problem(schedule, now=NOW) == "next run 2028-02-28T15:00Z is more than a year away"


@pytest.mark.parametrize(("every", "problem"), [("400d", "runs less than once a year"), ("366d", None), ("6h", None)])
def test_an_interval_longer_than_a_year_is_refused(every: str, problem: str | None) -> None:
    """An interval runs at most one interval after `now`: only one over a year is refused."""
    assert reach_problem(ScheduleConfig(every=every), now=NOW) == problem  # type: ignore[arg-type]


def test_an_ordinary_cron_is_accepted() -> None:
    """Every six hours passes."""
    assert reach_problem(ScheduleConfig(cron="0 */6 * * *"), now=NOW) is None
