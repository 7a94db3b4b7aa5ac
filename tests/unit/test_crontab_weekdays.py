"""Cron expressions mean what crontab(5) says: day-of-week 0 and 7 are Sunday, 1-5 Monday to Friday.

APScheduler 3's ``CronTrigger.from_crontab`` reads weekday numbers as 0 = Monday (its issue
286, fixed only in 4.x). Before ``service.scheduler.crontab``, the README's own example
``0 8 * * 1-5`` ("weekdays at 08:00") ran Tuesday to Saturday, and a deny window on it left
Monday open.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.config import ScheduleConfig, WindowConfig
from service.scheduler import crontab, next_runs
from service.windows import blocked

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


def fire_days(expression: str, *, days: int = 14) -> set[str]:
    """The weekday names a cron expression fires on over two weeks from a Monday."""
    trigger = crontab(expression)
    names: set[str] = set()
    moment: datetime | None = MONDAY
    while moment is not None and moment < MONDAY + timedelta(days=days):
        moment = trigger.get_next_fire_time(None, moment)
        if moment is not None and moment < MONDAY + timedelta(days=days):
            names.add(moment.strftime("%a"))
            moment += timedelta(seconds=1)
    return names


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0", {"Sun"}),
        ("7", {"Sun"}),
        ("1", {"Mon"}),
        ("6", {"Sat"}),
        ("5-7", {"Fri", "Sat", "Sun"}),
        ("0,6", {"Sun", "Sat"}),
        ("*/2", {"Sun", "Tue", "Thu", "Sat"}),
        ("1-5/2", {"Mon", "Wed", "Fri"}),
        ("mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("SUN", {"Sun"}),
        ("*", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_day_of_week_numbers_and_names_follow_crontab(field: str, expected: set[str]) -> None:
    assert fire_days(f"0 8 * * {field}") == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 8 * * 8", "neither 0-7"),
        ("0 8 * * 5-1", "runs backwards"),
        ("0 8 * * */0", "step"),
        ("0 8 1 * 1", "both the day of the month and the day of the week"),
        ("0 8 * *", "5 fields"),
    ],
)
def test_what_crontab_and_this_scheduler_would_read_differently_is_refused(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        crontab(expression)
    with pytest.raises(ValueError, match=problem):
        ScheduleConfig(cron=expression)


def test_a_weekday_schedule_runs_monday_to_friday() -> None:
    schedule = ScheduleConfig(cron="0 3 * * 1-5", max_phase=timedelta(0))
    runs = next_runs(schedule, "acme-registry", MONDAY, count=10)
    assert [run.strftime("%a") for run in runs[:5]] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert runs[5] == datetime(2026, 12, 7, 3, tzinfo=UTC)  # next Monday, not Saturday


def test_a_business_hours_deny_window_holds_monday_and_frees_saturday() -> None:
    window = WindowConfig(kind="deny", cron="0 8 * * 1-5", duration=timedelta(hours=10))
    monday_morning = MONDAY + timedelta(hours=9)
    block = blocked([window], monday_morning)
    assert block is not None
    assert block.until == MONDAY + timedelta(hours=18)
    assert blocked([window], monday_morning + timedelta(days=5)) is None  # Saturday 09:00
