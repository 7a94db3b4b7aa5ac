"""The only module that imports APScheduler (3.11, in-memory job store).

Schedules are pure: ``trigger_for(schedule, name)`` builds a trigger whose fire times
depend only on the schedule, the secret's name (a fixed phase from its hash) and the
``now`` it is asked about, so every replica computes the same due times. Random jitter,
if configured, is added on top by APScheduler when a job actually runs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol, TypeAlias

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger


class ScheduleConfig(Protocol):
    """What a schedule gives the scheduler (``service.config.ScheduleConfig`` has these fields).

    A Protocol rather than an import: the scheduler sits below the configuration, which
    validates cron expressions with it (no import cycle).
    """

    @property
    def every(self) -> timedelta | None: ...
    @property
    def cron(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def jitter(self) -> timedelta: ...
    @property
    def max_phase(self) -> timedelta: ...


EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

JobTrigger: TypeAlias = BaseTrigger  # what a job's fire times come from, for callers that import no APScheduler


# Crontab's day-of-week numbers: 0 and 7 are Sunday. APScheduler 3 reads numbers as 0 = Monday
# (its issue 286, fixed only in 4.x), so "1-5", weekdays in any crontab, ran Tuesday to Saturday.
CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A five-field crontab expression as crontab(5) reads it, as an APScheduler trigger.

    The day-of-week field is handed to APScheduler as day names, which it reads as crontab
    does. An expression that restricts both the day of the month and the day of the week is
    refused: crontab runs on either, APScheduler only when both match.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), got {len(fields)}")
    if fields[2] != "*" and fields[4] != "*":
        raise ValueError(
            "restricts both the day of the month and the day of the week; crontab runs on either,"
            " this scheduler only on days matching both: restrict one of them"
        )
    return CronTrigger(
        minute=fields[0],
        hour=fields[1],
        day=fields[2],
        month=fields[3],
        day_of_week=weekday_names(fields[4]),
        timezone=timezone,
    )


def weekday_names(field: str) -> str:
    """A crontab day-of-week field (numbers 0-7, names, ranges, lists, steps) as a list of day names."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 0
        if slash and step < 1:
            raise ValueError(f"day of week {part!r}: the step after '/' must be a whole number of 1 or more")
        if span == "*":
            first, last = 0, 6
        else:
            start, dash, end = span.partition("-")
            first = _weekday(start)
            last = _weekday(end) if dash else (7 if slash else first)  # "1/2": from Monday on, every other day
        if first > last:
            raise ValueError(f"day of week {span!r} runs backwards; crontab ranges go from low to high")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(CRON_WEEKDAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text.lower() in CRON_WEEKDAYS:
        return CRON_WEEKDAYS.index(text.lower())
    raise ValueError(f"day of week {text!r} is neither 0-7 (0 and 7 are Sunday) nor a name (sun, mon, ...)")


def cron_problem(expression: str, timezone: str = "UTC") -> str | None:
    """Why a five-field cron expression (or its time zone) is invalid, or None."""
    try:
        crontab(expression, timezone)
    except (ValueError, KeyError, LookupError) as e:
        return str(e) or type(e).__name__
    return None


@functools.lru_cache(maxsize=256)
def _crontab(expression: str, timezone: str) -> CronTrigger:
    """A parsed cron trigger (parsing costs about 0.3 ms; windows ask for the same few again and again)."""
    return crontab(expression, timezone)


def cron_start(expression: str, timezone: str, *, at_or_after: datetime) -> datetime | None:
    """The first fire time of a five-field cron expression at or after ``at_or_after`` (pure; windows use it)."""
    start: datetime | None = _crontab(expression, timezone).get_next_fire_time(None, at_or_after)
    return start.astimezone(UTC) if start is not None else None


# Longer than any gap of a yearly schedule: a leap year, plus a day for time zone shifts.
A_YEAR = timedelta(days=367)


def reach_problem(schedule: ScheduleConfig, *, now: datetime) -> str | None:
    """Why a schedule would never rotate in practice (no run, or none within a year of ``now``), or None.

    Judged on the schedule's own grid, without the per-secret phase (at most ``max_phase``
    for cron, and under one interval for ``every``), so one answer holds for every secret
    that shares the schedule. Besides the next run, the gap to the run after it counts:
    a cron that fires once every four years (29 February) is refused on every day.
    """
    if schedule.every is not None:
        if schedule.every > A_YEAR:
            return "runs less than once a year"
        return None
    assert schedule.cron is not None
    trigger = crontab(schedule.cron, schedule.timezone)
    first: datetime | None = trigger.get_next_fire_time(None, now)
    if first is None:
        return "never runs: no date matches it"
    if first - now > A_YEAR:
        return f"next run {_utc(first)} is more than a year away"
    second: datetime | None = trigger.get_next_fire_time(None, first + timedelta(microseconds=1))
    if second is None or second - first > A_YEAR:
        return f"runs less than once a year (next {_utc(first)}, then {_utc(second) if second else 'never'})"
    return None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def phase(name: str, period: timedelta) -> timedelta:
    """A fixed offset in ``[0, period)`` derived from the secret's name."""
    if period <= timedelta(0):
        return timedelta(0)
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    micros = int(period.total_seconds() * 1_000_000)
    return timedelta(microseconds=digest % micros)


class GridTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler 3 ships no type hints
    """Fires on ``inner``'s grid shifted by ``offset``, plus random jitter that never accumulates.

    APScheduler 3's own jitter is added to the previous fire time, so an interval job
    drifts a little further at every run. Here each fire time is the next grid point
    strictly after the previous one, and jitter is added to that point alone.
    """

    def __init__(self, inner: BaseTrigger, offset: timedelta = timedelta(0), jitter: int | None = None) -> None:
        self.inner = inner
        self.offset = offset
        self.jitter = jitter

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = previous_fire_time + timedelta(microseconds=1) if previous_fire_time else now
        nxt: datetime | None = self.inner.get_next_fire_time(None, after - self.offset)
        if nxt is None:
            return None
        fire_time: datetime = self._apply_jitter(nxt + self.offset, self.jitter, now)
        return fire_time

    def __str__(self) -> str:
        return f"{self.inner} + {self.offset}"


class EveryTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler 3 ships no type hints
    """Fires at ``start + k * period`` (k a whole number), plus random jitter that never accumulates.

    What ``GridTrigger`` over an ``IntervalTrigger`` did, in whole microseconds and without the
    inner trigger: one small object per job instead of two (5,000 jobs: about 1 MB).
    """

    def __init__(self, start: datetime, period: timedelta, jitter: int | None = None) -> None:
        self.start = start
        self.period = period
        self.jitter = jitter

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = previous_fire_time + timedelta(microseconds=1) if previous_fire_time else now
        steps = max(0, -((self.start - after) // self.period))  # ceil((after - start) / period), none before start
        fire_time: datetime = self._apply_jitter(self.start + self.period * steps, self.jitter, now)
        return fire_time

    def __str__(self) -> str:
        return f"every {self.period} from {self.start.isoformat()}"


def trigger_for(schedule: ScheduleConfig, name: str, *, with_jitter: bool = True) -> BaseTrigger:
    """The APScheduler trigger of one secret's schedule."""
    jitter = (int(schedule.jitter.total_seconds()) or None) if with_jitter else None
    if schedule.every is not None:
        return EveryTrigger(EPOCH + phase(name, schedule.every), schedule.every, jitter)
    assert schedule.cron is not None
    cron = _crontab(schedule.cron, schedule.timezone)  # shared: a CronTrigger only answers questions
    return GridTrigger(cron, phase(name, schedule.max_phase), jitter)


def every(period: timedelta) -> BaseTrigger:
    """A plain interval trigger (maintenance jobs), starting one period from now."""
    return IntervalTrigger(seconds=period.total_seconds(), timezone=UTC)


def next_runs(schedule: ScheduleConfig, name: str, now: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` due times after ``now`` (without random jitter)."""
    trigger = trigger_for(schedule, name, with_jitter=False)
    runs: list[datetime] = []
    previous: datetime | None = None
    cursor = now
    while len(runs) < count:
        nxt = trigger.get_next_fire_time(previous, cursor)
        if nxt is None:
            break
        runs.append(nxt.astimezone(UTC))
        previous, cursor = nxt, nxt + timedelta(microseconds=1)
    return runs


def next_due_after(schedule: ScheduleConfig, name: str, now: datetime) -> datetime:
    """The first due time strictly after ``now``."""
    runs = next_runs(schedule, name, now + timedelta(microseconds=1))
    return runs[0] if runs else now + timedelta(days=365)


def period_of(schedule: ScheduleConfig, name: str, now: datetime) -> timedelta:
    """The time between this schedule's next two due times (its interval, for ``every``)."""
    if schedule.every is not None:
        return schedule.every
    runs = next_runs(schedule, name, now, count=2)
    return runs[1] - runs[0] if len(runs) == 2 else timedelta(days=365)


def _now() -> datetime:
    return datetime.now(UTC)


MAX_NAP = 60.0  # the timetable looks at the clock at least this often (seconds): a jump of the clock is seen


class Timetable:
    """The regular jobs' next fire times on one heap and one thread: a job is an id and a due time.

    APScheduler keeps a ``Job`` per job (its trigger, function reference, args and kwargs) and a
    job store entry: with one job per secret name, 5,000 secrets held about 3.8 MB of an idle
    worker (docs/performance.md, tenth round). Here a job is a heap entry and a dict entry, and
    its trigger is built by ``trigger_of(job_id)`` when it is needed.

    At its fire time a job is handed to ``release(job_id, at)``; its next fire time is the
    trigger's first after now, so runs missed meanwhile (a suspended process) are coalesced
    into the one released, as APScheduler's ``coalesce`` does. A job whose ``trigger_of`` is
    None (removed by a reload while due) is dropped.
    """

    def __init__(
        self,
        *,
        trigger_of: Callable[[str], BaseTrigger | None],
        release: Callable[[str, datetime], None],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._trigger_of = trigger_of
        self._release = release
        self._clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, datetime] = {}  # job id -> its next fire time
        self._heap: list[tuple[datetime, str]] = []  # (due, job id); entries no longer in _due are stale
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add(self, job_id: str) -> None:
        """Schedule ``job_id`` (again: its fire times from now on, by its current trigger)."""
        trigger = self._trigger_of(job_id)
        due: datetime | None = trigger.get_next_fire_time(None, self._clock()) if trigger is not None else None
        with self._lock:
            self._set(job_id, due)
        self._wake.set()

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._due.pop(job_id, None)

    def next_run_time(self, job_id: str) -> datetime | None:
        return self._due.get(job_id)

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._due)

    def release_due(self) -> float:
        """Release every job due by now; the seconds until the next is due (at most ``MAX_NAP``)."""
        now = self._clock()
        released = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                due, job_id = heapq.heappop(self._heap)
                if self._due.get(job_id) != due:
                    continue  # removed, or scheduled again since
                trigger = self._trigger_of(job_id)
                if trigger is None:
                    del self._due[job_id]
                    continue
                latest, following = due, trigger.get_next_fire_time(due, now)
                while following is not None and following <= now:  # coalesced: only the latest missed run
                    latest, following = following, trigger.get_next_fire_time(following, now)
                self._set(job_id, following)
                released.append((job_id, latest))
            nap = (self._heap[0][0] - now).total_seconds() if self._heap else MAX_NAP
        for job_id, at in released:
            self._release(job_id, at)
        return min(max(nap, 0.0), MAX_NAP)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="timetable", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopped:
            nap = self.release_due()
            self._wake.wait(nap)
            self._wake.clear()

    def _set(self, job_id: str, due: datetime | None) -> None:
        if due is None:
            self._due.pop(job_id, None)
            return
        self._due[job_id] = due
        heapq.heappush(self._heap, (due, job_id))
        if len(self._heap) > 2 * len(self._due) + 64:  # stale entries from removals and re-adds
            self._heap = [(at, job) for job, at in self._due.items()]
            heapq.heapify(self._heap)


class Scheduler:
    """APScheduler's in-memory store and executor, plus a ``Timetable`` for the regular jobs; never shared.

    ``run_regular(job_id)`` is what every regular job runs, at the fire times of
    ``trigger_of(job_id)``. When one is due, the timetable hands it to APScheduler as a one-off
    job under the job's own id: the executor's rules (misfire grace, one running instance per
    id, coalescing of a pending one) apply to it as to every other job.
    """

    def __init__(
        self,
        *,
        misfire_grace: timedelta,
        run_regular: Callable[[str], object],
        trigger_of: Callable[[str], BaseTrigger | None],
        tz: tzinfo = UTC,
    ) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=8)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(misfire_grace.total_seconds()),
            },
            timezone=tz,
        )
        self._lock = threading.Lock()
        self._run_regular = run_regular
        self._timetable = Timetable(trigger_of=trigger_of, release=self._release)

    def add(self, job_id: str, trigger: BaseTrigger, func: Callable[..., Any], *args: Any) -> None:
        """A job of its own (maintenance, rechecks): few of them, each with its own trigger and function."""
        self._scheduler.add_job(func, trigger=trigger, args=args, id=job_id, name=job_id, replace_existing=True)

    def add_regular(self, job_id: str) -> None:
        """Schedule a regular job, or schedule it again from now by its current trigger (a reload changed it)."""
        self._timetable.add(job_id)

    def _release(self, job_id: str, at: datetime) -> None:
        from apscheduler.triggers.date import DateTrigger

        self._scheduler.add_job(
            self._run_regular,
            trigger=DateTrigger(run_date=at),
            args=(job_id,),
            id=job_id,
            name=job_id,
            replace_existing=True,
        )

    def once(self, job_id: str, at: datetime, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func`` once at ``at`` (or earlier, if an earlier one-off is pending under the same id).

        Used for start-up catch-up and dynamic leases: a separate one-off job, so the
        regular job keeps its deterministic phase.
        """
        from apscheduler.triggers.date import DateTrigger

        with self._lock:
            pending = self._scheduler.get_job(job_id)
            if pending is not None and pending.next_run_time is not None and pending.next_run_time <= at:
                return
            self._scheduler.add_job(
                func, trigger=DateTrigger(run_date=at), args=args, id=job_id, name=job_id, replace_existing=True
            )

    def remove(self, job_id: str) -> None:
        """Remove a job if it exists (a secret removed by a reload), and a run of it not started yet."""
        from apscheduler.jobstores.base import JobLookupError

        self._timetable.remove(job_id)
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job_id)

    def job_ids(self) -> list[str]:
        """Every job's id once (a regular job released and not started yet is in both stores)."""
        return list(dict.fromkeys([job.id for job in self._scheduler.get_jobs()] + self._timetable.job_ids()))

    def next_run_time(self, job_id: str) -> datetime | None:
        """The job's next run: a released run not started yet, else its next fire time; None if no such job.

        For a job of its own, None also before the scheduler is started.
        """
        job = self._scheduler.get_job(job_id)
        pending: datetime | None = getattr(job, "next_run_time", None)
        return pending or self._timetable.next_run_time(job_id)

    def start(self) -> None:
        self._scheduler.start()
        self._timetable.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and self._timetable.running

    def shutdown(self, *, wait: bool) -> None:
        self._timetable.stop()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
