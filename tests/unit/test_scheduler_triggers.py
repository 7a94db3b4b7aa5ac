"""Schedules: a fixed phase per secret, the same due times on every replica."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.config import ScheduleConfig
from service.scheduler import next_due_after, next_runs, phase, trigger_for

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_phase_is_deterministic_and_bounded() -> None:
    """The phase depends only on the name and stays inside the period."""
    period = timedelta(hours=1)
    assert phase("acme-registry", period) == phase("acme-registry", period)
    phases = {phase(f"secret-{i}", period) for i in range(200)}
    assert all(timedelta(0) <= p < period for p in phases)
    assert len(phases) > 190  # secrets spread out


def test_interval_runs_are_one_period_apart() -> None:
    """An interval schedule fires every period, at the secret's phase."""
    schedule = ScheduleConfig(every=timedelta(minutes=10))
    runs = next_runs(schedule, "acme-registry", NOW, count=3)
    assert runs[1] - runs[0] == timedelta(minutes=10)
    assert runs[2] - runs[1] == timedelta(minutes=10)
    assert NOW <= runs[0] < NOW + timedelta(minutes=10)


def test_same_due_times_for_every_replica() -> None:
    """Two replicas asking at different moments agree on the due times."""
    schedule = ScheduleConfig(every=timedelta(minutes=10))
    early = next_runs(schedule, "acme-registry", NOW, count=3)
    later = next_runs(schedule, "acme-registry", NOW + timedelta(seconds=1), count=3)
    assert set(early[1:]) <= set(later) or set(later[:2]) <= set(early)


def test_cron_gets_a_phase_within_max_phase() -> None:
    """A cron schedule fires at its time plus the name's phase, under max_phase."""
    schedule = ScheduleConfig(cron="0 * * * *", max_phase=timedelta(minutes=5))
    run = next_runs(schedule, "acme-registry", NOW)[0]
    offset = run - NOW.replace(minute=0)
    assert timedelta(0) <= offset % timedelta(hours=1) < timedelta(minutes=5)
    assert offset % timedelta(hours=1) == phase("acme-registry", timedelta(minutes=5))


def test_next_due_after_is_strictly_later() -> None:
    """The next due time after a run is never the run itself."""
    schedule = ScheduleConfig(every=timedelta(minutes=10))
    run = next_runs(schedule, "acme-registry", NOW)[0]
    assert next_due_after(schedule, "acme-registry", run) == run + timedelta(minutes=10)


def test_jitter_does_not_accumulate() -> None:
    """With jitter, each run stays within jitter of its grid point, run after run."""
    schedule = ScheduleConfig(every=timedelta(minutes=10), jitter=timedelta(seconds=30))
    trigger = trigger_for(schedule, "acme-registry")
    grid = next_runs(schedule, "acme-registry", NOW, count=50)
    previous = None
    for point in grid:
        fire = trigger.get_next_fire_time(previous, previous or NOW)
        assert point <= fire <= point + timedelta(seconds=30)
        previous = fire
