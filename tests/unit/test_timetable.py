"""The regular jobs' timetable: one heap of due times, released at their time, missed runs coalesced.

The ``Timetable`` takes a clock, so most of these are pure; the last ones run a real
``Scheduler`` (APScheduler's executor behind it) for a few seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from service.config import ScheduleConfig
from service.scheduler import JobTrigger, Scheduler, Timetable, next_runs, trigger_for

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SCHEDULES = {
    "rotate:a": ScheduleConfig(every=timedelta(minutes=10)),
    "rotate:b": ScheduleConfig(every=timedelta(hours=1)),
}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def timetable(schedules: dict[str, ScheduleConfig]) -> tuple[Timetable, Clock, list[tuple[str, datetime]]]:
    clock, released = Clock(), []

    def trigger_of(job_id: str) -> JobTrigger | None:
        schedule = schedules.get(job_id)
        return None if schedule is None else trigger_for(schedule, job_id, with_jitter=False)

    table = Timetable(trigger_of=trigger_of, release=lambda job, at: released.append((job, at)), clock=clock)
    return table, clock, released


def due_times(job_id: str, count: int) -> list[datetime]:
    return next_runs(SCHEDULES[job_id], job_id, NOW, count=count)


def test_each_job_is_released_at_its_fire_times_and_the_nap_is_until_the_next() -> None:
    """Over two hours, every fire time of both jobs is released once, in order, and nothing early."""
    table, clock, released = timetable(SCHEDULES)
    for job in SCHEDULES:
        table.add(job)
    assert table.next_run_time("rotate:a") == due_times("rotate:a", 1)[0]
    expected = sorted([(at, job) for job in SCHEDULES for at in due_times(job, 14) if at <= NOW + timedelta(hours=2)])
    while clock.now <= NOW + timedelta(hours=2):
        nap = table.release_due()
        assert all(at <= clock.now for _, at in released)
        clock.now += timedelta(seconds=max(nap, 0.001))
    assert sorted((at, job) for job, at in released) == expected
    assert [at for _, at in released] == sorted(at for _, at in released)


def test_runs_missed_while_suspended_are_one_run_at_the_latest_missed_time() -> None:
    """Asleep for an hour: job a (every 10 min) is released once, at its latest missed time, next after now."""
    table, clock, released = timetable({"rotate:a": SCHEDULES["rotate:a"]})
    table.add("rotate:a")
    clock.now = NOW + timedelta(hours=1, seconds=1)
    table.release_due()
    missed = [at for at in due_times("rotate:a", 8) if at <= clock.now]
    assert released == [("rotate:a", missed[-1])]
    next_run = table.next_run_time("rotate:a")
    assert next_run is not None
    assert clock.now < next_run == missed[-1] + timedelta(minutes=10)


def test_a_removed_job_is_never_released_and_one_added_again_keeps_one_entry() -> None:
    """Removed: not released, no next run. Added twice (a reload changed it): released once per fire time."""
    schedules = dict(SCHEDULES)
    table, clock, released = timetable(schedules)
    for job in schedules:
        table.add(job)
    table.remove("rotate:b")
    table.add("rotate:a")
    table.add("rotate:a")
    assert table.job_ids() == ["rotate:a"]
    assert table.next_run_time("rotate:b") is None
    clock.now = due_times("rotate:a", 1)[0]
    table.release_due()
    assert released == [("rotate:a", clock.now)]


def test_a_job_whose_trigger_is_gone_when_due_is_dropped() -> None:
    """A reload removed the job's entries between two fire times: at the next one it is dropped, not released."""
    schedules = dict(SCHEDULES)
    table, clock, released = timetable(schedules)
    table.add("rotate:a")
    del schedules["rotate:a"]
    clock.now = NOW + timedelta(hours=1)
    table.release_due()
    assert released == []
    assert table.job_ids() == []


def test_stale_heap_entries_are_compacted_and_change_nothing() -> None:
    """Thousands of re-adds leave the heap bounded, and the job still fires once at its time."""
    table, clock, released = timetable({"rotate:a": SCHEDULES["rotate:a"]})
    for _ in range(5000):
        table.add("rotate:a")
    assert len(table._heap) <= 2 + 64
    clock.now = due_times("rotate:a", 1)[0]
    table.release_due()
    assert released == [("rotate:a", clock.now)]


def test_a_real_scheduler_runs_regular_jobs_and_never_two_runs_of_one_at_once() -> None:
    """Every second, for 3.5 s: job a runs each time; job b (each run takes 1.5 s) never overlaps itself."""
    every_second = ScheduleConfig(every=timedelta(seconds=1))
    runs: dict[str, list[float]] = {"rotate:a": [], "rotate:b": []}
    running: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()

    def run(job_id: str) -> None:
        with lock:
            if job_id in running:
                overlaps.append(job_id)
            running.add(job_id)
        runs[job_id].append(time.monotonic())
        time.sleep(1.5 if job_id == "rotate:b" else 0)
        with lock:
            running.discard(job_id)

    scheduler = Scheduler(
        misfire_grace=timedelta(seconds=30),
        run_regular=run,
        trigger_of=lambda job_id: trigger_for(every_second, job_id) if job_id in runs else None,
    )
    for job in runs:
        scheduler.add_regular(job)
    assert scheduler.next_run_time("rotate:a") is not None
    scheduler.start()
    try:
        assert scheduler.running
        time.sleep(3.5)
    finally:
        scheduler.shutdown(wait=True)
    assert not scheduler.running
    assert 3 <= len(runs["rotate:a"]) <= 4
    assert 1 <= len(runs["rotate:b"]) <= 2  # the runs due while it ran were skipped (one instance per job)
    assert overlaps == []


def test_a_released_run_not_started_yet_is_one_job_id() -> None:
    """Released to APScheduler and still pending (the scheduler not started): job_ids names it once."""
    every_hour = ScheduleConfig(every=timedelta(hours=1))
    scheduler = Scheduler(
        misfire_grace=timedelta(seconds=30),
        run_regular=lambda job_id: None,
        trigger_of=lambda job_id: trigger_for(every_hour, job_id, with_jitter=False),
    )
    scheduler.add_regular("rotate:a")
    regular = scheduler.next_run_time("rotate:a")
    scheduler._release("rotate:a", NOW)  # what the timetable does when it is due
    assert scheduler.job_ids() == ["rotate:a"]
    assert scheduler.next_run_time("rotate:a") == regular  # a pending run has no time before start
