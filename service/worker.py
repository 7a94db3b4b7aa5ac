"""`rotator run`: the long-running worker.

Start-up: open the HTTP port, wait (capped exponential backoff, one log line per attempt)
until the database is migrated and Vault answers, hold this process's instance lock, close
intents a dead process left open (and rotate those pairs again at once), then schedule one
job per secret name and schedule (a job sweeps every pair of that name) and catch up on what
is overdue. While it runs it heals itself: the instance lock is taken again after a database
failover, open intents of free pairs are reconciled every ``reconcile_every``, and /livez
fails only when it cannot make progress although its dependencies answer.
SIGTERM / SIGINT: stop scheduling, give in-flight rotations ``shutdown_grace`` to finish
and record their outcomes, revoke the Vault token, exit 0.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from service import collector, logs
from service.app import App
from service.config import Settings
from service.errors import ConfigError, DependencyUnavailable, RotatorError
from service.health import Progress, StaleWatch, liveness, wait_delay
from service.http import HealthServer, Probes
from service.model import Outcome, RotationKey, RotationState, ScheduleSpec, SecretSpec, Trigger, spec_pairs
from service.reload import plan_reload
from service.rotation import SweepReport, SweepRequest
from service.scheduler import JobTrigger, Scheduler, every, trigger_for
from service.status import status_rows, summary
from service.wakeup import Wakeup

log = logs.get_logger("rotator.worker")

SOON_ENOUGH = timedelta(seconds=5)  # a regular run this close makes an extra one pointless
VAULT_MAINTENANCE_EVERY = timedelta(seconds=5)  # cheap: maintain() acts only when renewal is due
INSTANCE_MAINTENANCE_EVERY = timedelta(seconds=2)  # after a failover the lock is back within seconds
HEALTH_EVERY = timedelta(seconds=30)  # stale flags and metrics from the states changed since (alerts wait 15 min)
HEALTH_FULL_EVERY = timedelta(minutes=10)  # and from every state this often, whatever the change reads missed
CHANGES_OVERLAP = timedelta(seconds=15)  # a state's commit this much later than its updated_at is still read
READY_CACHE_SECONDS = 3.0  # probes are answered from a recent check, as kopf's are
MAIN_LOOP_TICK = 1.0  # the main thread's loop wakes this often (a signal or stop() wakes it at once)
SIGNAL_POLL = 0.1  # without a wakeup pipe (run() not on the main thread): how often a signal is looked for
WAIT_BASE, WAIT_CAP = timedelta(seconds=1), timedelta(seconds=30)


def schedule_groups(specs: Iterable[SecretSpec]) -> dict[str, list[SecretSpec]]:
    """Job id -> the ``[[secrets]]`` entries it sweeps: one job per secret name and schedule.

    Entries that share a name (one pull-secret name, a robot account per tenant) share a job
    and its phase, so one sweep covers all their pairs; a name kept on two schedules gets a job
    for each (``rotate:NAME``, ``rotate:NAME~2``).
    """
    by_schedule: dict[tuple[str, ScheduleSpec | None], list[SecretSpec]] = {}
    for secret in specs:
        by_schedule.setdefault((secret.name, secret.schedule), []).append(secret)
    groups: dict[str, list[SecretSpec]] = {}
    seen: dict[str, int] = {}
    for (name, _), entries in by_schedule.items():
        seen[name] = seen.get(name, 0) + 1
        groups[f"rotate:{name}" + (f"~{seen[name]}" if seen[name] > 1 else "")] = entries
    return groups


class Worker:
    """Schedules sweeps and keeps the process healthy until told to stop."""

    def __init__(self, app: App, *, config_path: Path | None = None) -> None:
        self.app = app
        self.settings = app.settings
        self._config_path = config_path  # SIGHUP reads it again
        # Set by the signal handlers: plain assignments, since a handler runs on the main thread
        # between any two bytecodes and must never wait for a lock that thread may hold.
        self._signalled: str | None = None
        self._reload_requested = False
        self.scheduler = Scheduler(
            misfire_grace=self.settings.rotation.misfire_grace, run_regular=self.tick, trigger_of=self._trigger_of
        )
        self._stop = threading.Event()
        self._scheduling = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._http: HealthServer | None = None
        self._specs = self.settings.specs()  # configuration order
        self._groups = schedule_groups(self._specs)
        self._pairs = pairs_of(self._groups)
        self._job_of = jobs_of_pairs(self._groups, self._pairs)
        self._heartbeat_at: datetime | None = None
        self._stuck_since: datetime | None = None
        self._lock_problem: str | None = None
        self._ready_cache: tuple[float, dict[str, str]] | None = None
        self._not_alive: str | None = None
        self._stale = StaleWatch()
        self._wakeup: Wakeup | None = None  # set by run(): what _pause sleeps on
        self._health_mark: datetime | None = None  # the database's time when the health job last read states
        self._health_full: tuple[datetime, Settings] | None = None  # when it last read every state, for what

    # --- lifecycle ----------------------------------------------------------------

    def run(self) -> int:
        self._install_signal_handlers()
        try:
            return self._run()
        finally:
            if self._wakeup is not None:
                self._wakeup.close()
                self._wakeup = None

    def _run(self) -> int:
        self._keep_specs_only()
        self._start_http()  # first: /livez answers and /readyz says what it waits for
        if not self._wait_for_dependencies():
            return self._shutdown()
        self._maintain_vault()  # exports the token's expiry now, not 5 s later
        self._recover()
        self._schedule()
        self._export_health()  # the stale flags from the start, not HEALTH_EVERY later
        collector.settle()  # start-up is done: the configuration, its jobs and the app live until exit
        self.scheduler.start()
        self._catch_up()  # after start: the regular jobs know their next run times
        self._scheduling.set()
        log.info(
            "worker.started",
            pairs=len(self._pairs),
            secrets=len(self._specs),
            jobs=len(self._groups),
            targets=len(self.settings.targets),
            instance=self.app.instance,
        )
        while not self._pause(MAIN_LOOP_TICK):
            if self._reload_requested:
                self._reload_requested = False
                self.reload()
        return self._shutdown()

    def stop(self) -> None:
        self._stop.set()
        if self._wakeup is not None:
            self._wakeup.wake()

    def _stopping(self) -> bool:
        """Whether to stop; a signal noted by the handler becomes the stop event here, outside the handler."""
        if self._signalled is not None and not self._stop.is_set():
            log.info("worker.stopping", signal=self._signalled)
            self._stop.set()
        return self._stop.is_set()

    def _pause(self, seconds: float) -> bool:
        """Sleep on the main thread for ``seconds`` or until told to stop (True) or to reload (False)."""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0 or self._reload_requested:
                return False
            if self._wakeup is not None:
                self._wakeup.wait(left)
            else:
                time.sleep(min(left, SIGNAL_POLL))
        return True

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, _: FrameType | None) -> None:
            self._signalled = signal.Signals(signum).name  # no lock, no log call: see __init__

        def hang_up(signum: int, _: FrameType | None) -> None:
            self._reload_requested = True

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGHUP, hang_up)
        self._wakeup = Wakeup()
        self._wakeup.install()  # a signal wakes the main thread's _pause at once

    # --- reload ---------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read and validate the file; apply new, changed and removed secrets and schedules.

        A configuration that does not load keeps the running one and logs one error naming the
        problems. Sections read once at start-up are reported when they changed, not applied.
        """
        from service.config import load_settings

        try:
            new = load_settings(self._config_path)
        except ConfigError as e:
            problems = "; ".join(f"{issue.location}: {issue.problem}" for issue in e.issues)
            log.error("config.reload_failed", file=e.source, problems=problems, kept="the running configuration")
            return False
        specs = new.specs()
        groups = schedule_groups(specs)
        plan = plan_reload(self.settings, new, old_groups=self._groups, new_groups=groups)
        running, pairs = new.without_secrets(), pairs_of(groups)  # the entries live on as specs only
        self.app.adopt(running, targets_changed=plan.targets_changed, pairs=pairs)
        self.settings, self._specs, self._groups, self._pairs = running, specs, groups, pairs
        self._job_of = jobs_of_pairs(groups, pairs)
        for job in plan.remove:
            self.scheduler.remove(job)
        for job in (*plan.add, *plan.replace):
            self.scheduler.add_regular(job)
        self._reschedule_rechecks()
        collector.settle()  # the replaced configuration is collected, the new one left out of collections
        log.info(
            "config.reloaded",
            file=str(self._config_path),
            pairs=len(self._pairs),
            pairs_added=plan.pairs_added,
            pairs_removed=plan.pairs_removed,
            jobs_added=len(plan.add),
            jobs_changed=len(plan.replace),
            jobs_removed=len(plan.remove),
            targets_changed=list(plan.targets_changed),
        )
        if plan.restart_needed:
            log.warning("config.restart_needed", sections=list(plan.restart_needed), note="running values kept")
        if plan.add or plan.replace:
            self._catch_up()  # a new pair is rotated now, not at its first slot
        return True

    def _keep_specs_only(self) -> None:
        """From here on the jobs' specs are the configuration's secrets: its pydantic entries are let go.

        At 5,000 entries they were about 9 MB of the idle worker's RSS, read by nothing after start-up.
        """
        self.settings = self.settings.without_secrets()
        self.app.adopt(self.settings, pairs=self._pairs)

    def _wait_for_dependencies(self) -> bool:
        """Until the database is migrated, Vault answers and the instance lock is held; False if told to stop.

        An unreachable dependency is waited for with capped exponential backoff, one line per
        attempt, so a pod started before its database never crash-loops. A schema that is not
        at head, or a configuration error, still ends the process (exit 2): waiting won't fix it.
        """
        attempt = 0
        while not self._stopping():
            attempt += 1
            try:
                self.app.require_schema()
                self.app.vault_session.check()
                _ = self.app.state  # takes the instance lock
            except DependencyUnavailable as e:
                delay = wait_delay(attempt, base=WAIT_BASE, cap=WAIT_CAP)
                log.warning(
                    "worker.waiting",
                    attempt=attempt,
                    error=e.code,
                    message=str(e),
                    retry_in_s=delay.total_seconds(),
                )
                self._pause(delay.total_seconds())
            else:
                if attempt > 1:
                    log.info("worker.dependencies_ready", attempts=attempt)
                return True
        return False

    def _shutdown(self) -> int:
        self.scheduler.shutdown(wait=False)
        grace = self.settings.rotation.shutdown_grace.total_seconds()
        with self._idle:
            finished = self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)
        if not finished:
            log.warning(
                "worker.grace_expired",
                in_flight=self._in_flight,
                note="their intents stay open; a live replica or the next start closes them as interrupted",
            )
        if self._http is not None:
            self._http.stop()
        if not finished:
            self._abandon()
        self.app.close()  # revokes the Vault token, releases the instance lock
        log.info("worker.stopped", clean=True)
        return 0

    def _abandon(self) -> NoReturn:
        """Revoke the Vault token and exit now: ``app.close()`` would wait for the rotation threads."""
        self.app.vault_session.revoke()
        log.info("worker.stopped", clean=False)
        logs.wait_written()  # a rotation thread may be writing this line: os._exit would drop it
        os._exit(0)  # rotation threads still run; the lease and open intents make this safe

    # --- jobs -----------------------------------------------------------------------

    def _schedule(self) -> None:
        for job in self._groups:
            self.scheduler.add_regular(job)
        self._reschedule_rechecks()
        self.scheduler.add("vault:maintain", every(VAULT_MAINTENANCE_EVERY), self._maintain_vault)
        self.scheduler.add("instance:maintain", every(INSTANCE_MAINTENANCE_EVERY), self._maintain_instance)
        self.scheduler.add("reconcile", every(self.settings.rotation.reconcile_every), self._reconcile)
        self.scheduler.add("health", every(HEALTH_EVERY), self._export_health)

    def _trigger_of(self, job: str) -> JobTrigger | None:
        """The trigger of a regular job, built when the scheduler needs it; None once a reload removed the job."""
        entries = self._groups.get(job)
        if entries is None:
            return None
        schedule = entries[0].schedule
        assert schedule is not None, "resolved by Settings.spec_of"
        return trigger_for(schedule, entries[0].name)

    def _reschedule_rechecks(self) -> None:
        wanted = {
            _recheck_job(secret): secret
            for secret in pairs_specs(self._groups)
            if secret.verify.mode == "registry" and secret.verify.recheck_every is not None
        }
        for job in self.scheduler.job_ids():
            if job.startswith("recheck:") and job not in wanted:
                self.scheduler.remove(job)
        for secret in wanted.values():
            self._schedule_recheck(secret)

    def _schedule_recheck(self, secret: SecretSpec) -> None:
        if secret.source.kind == "dynamic":
            log.info(
                "verify.recheck_skipped", secret=secret.name, reason="a dynamic source is verified at each rotation"
            )
            return
        assert secret.verify.recheck_every is not None
        self.scheduler.add(_recheck_job(secret), every(secret.verify.recheck_every), self.recheck, secret)

    def _catch_up(self) -> None:
        """Pairs never rotated, or overdue (e.g. the worker was down), run now instead of at their next slot."""
        request = self.catch_up_request()
        if request is not None:
            self.scheduler.once("catch-up", self.app.clock(), self._sweep, request)

    def catch_up_request(self) -> SweepRequest | None:
        """One sweep of every overdue pair: together they share its Vault reads and group commits.

        One job per secret ran them eight at a time (the scheduler's threads), one small sweep
        each: 1,000 secrets took 3.5 times the CPU and wall time of one sweep (bench/sweep.py).
        """
        now = self.app.clock()
        keys = [
            key
            for key in overdue(self._pairs, self.app.state.load(), now=now)
            if not self._regular_run_within(self._job_of[key], now)
        ]
        if not keys:
            return None
        entries = _entries_of(keys, self._pairs)
        return SweepRequest(
            secrets=entries, trigger=Trigger.STARTUP, due_by=now, targets=frozenset(key.target for key in keys)
        )

    def run_soon(self, key: RotationKey, at: datetime, trigger: Trigger = Trigger.SCHEDULE) -> None:
        """An extra run of one pair at ``at`` (e.g. before a lease ends), unless its regular job fires about then."""
        if self._regular_run_within(self._job_of[key], at):
            return
        self.scheduler.once(f"rotate-soon:{key}", at, self.tick_pair, key, trigger)

    def _after_window(self, key: RotationKey, at: datetime) -> None:
        """A run deferred by a window runs as the window ends (regular runs before then are not granted)."""
        regular = self.scheduler.next_run_time(self._job_of[key])
        if regular is not None and at <= regular <= at + SOON_ENOUGH:
            return
        self.scheduler.once(f"rotate-soon:{key}", at, self.tick_pair, key, Trigger.SCHEDULE)

    def _regular_run_within(self, job: str, at: datetime) -> bool:
        regular = self.scheduler.next_run_time(job)
        return regular is not None and regular <= at + SOON_ENOUGH

    def tick(self, job: str, trigger: Trigger = Trigger.SCHEDULE) -> SweepReport | None:
        """One scheduled sweep of every pair of one job (a secret name on all its targets)."""
        entries = self._groups.get(job)
        if entries is None:  # removed by a reload while it was due
            return None
        return self._sweep(SweepRequest(secrets=entries, trigger=trigger, due_by=self.app.clock()))

    def tick_pair(self, key: RotationKey, trigger: Trigger = Trigger.SCHEDULE) -> SweepReport | None:
        """One sweep of one pair (an extra run brought forward)."""
        secret = self._pairs.get(key)
        if secret is None:
            return None
        request = SweepRequest(
            secrets=[secret], trigger=trigger, due_by=self.app.clock(), targets=frozenset([key.target])
        )
        return self._sweep(request)

    def recheck(self, secret: SecretSpec) -> SweepReport | None:
        """Verify the credential already applied against the registry again."""
        return self._sweep(SweepRequest(secrets=[secret], trigger=Trigger.SCHEDULE, recheck=True))

    def _sweep(self, request: SweepRequest) -> SweepReport | None:
        if self._stop.is_set():
            return None
        with self._idle:
            self._in_flight += 1
        try:
            report = self.app.rotator.sweep(request)
        except RotatorError as e:
            log.error("sweep.failed", error=e.code, message=str(e))
            return None
        else:
            self._follow_up(report)
            collector.after_sweep(len(report.results))  # the catch-up's garbage back to the system
            return report
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _follow_up(self, report: SweepReport) -> None:
        """Bring a pair forward when its credential's lease ends, or its retry is due, before the next slot."""
        for result in report.results:
            job_id = self._job_of.get(result.key)
            if job_id is None:
                continue
            job = self.scheduler.next_run_time(job_id)
            if result.outcome is Outcome.DEFERRED and result.next_run_at is not None:
                self._after_window(result.key, result.next_run_at)
            elif result.next_run_at is not None and job is not None and result.next_run_at < job:
                self.run_soon(result.key, result.next_run_at)
            if job is not None:
                self.app.metrics.next_run_at(secret=result.key.secret, at=job)

    def _recover(self) -> None:
        report = self.app.rotator.recover(self._pairs)
        if report.results:
            log.warning("worker.recovered", interrupted=len(report.results), run_id=report.run_id)

    def _reconcile(self) -> None:
        """Close open intents of free pairs (owner dead, or our own outcome write failed) and rotate them again."""
        if self._stop.is_set():
            return
        with self._idle:
            self._in_flight += 1
        try:
            report = self.app.rotator.recover(self._pairs, trigger=Trigger.RECONCILE)
        except RotatorError as e:
            log.warning("reconcile.failed", error=e.code, message=str(e))
            return
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        if report.results:
            log.warning("worker.reconciled", interrupted=len(report.results), run_id=report.run_id)
            self._follow_up(report)

    def _maintain_vault(self) -> None:
        try:
            self.app.vault_session.maintain()
            self.app.metrics.vault_token_expires_at(self.app.vault_session.token_expires_at())
        except RotatorError as e:
            log.error("vault.maintenance_failed", error=e.code, message=str(e))

    def _maintain_instance(self) -> None:
        """Take the instance lock back after the database restarted or failed over (leases need it)."""
        now = self.app.clock()
        self._heartbeat_at = now
        try:
            self.app.instance_lock.ensure()
        except DependencyUnavailable as e:  # the database is down: waiting is right, restarting is not
            self._stuck_since = None
            self._note_lock_problem(f"{e.code}: {e}")
        except RotatorError as e:  # the database answers, but the lock cannot be had
            self._stuck_since = self._stuck_since or now
            self._note_lock_problem(f"{e.code}: {e}")
        else:
            self._stuck_since = None
            if self._lock_problem is not None:
                log.info("instance.lock_restored", instance=self.app.instance)
            self._lock_problem = None

    def _note_lock_problem(self, problem: str) -> None:
        if problem != self._lock_problem:  # one line per change, not one every 2 s
            log.error("instance.lock_unavailable", problem=problem, note="nothing is claimed until it is back")
        self._lock_problem = problem

    def _export_health(self) -> None:
        """Stale flags per pair, as metrics, from the states written since the last pass (any replica's).

        Every state is read again on the first pass, after a reload, when the hour turns (a cron's
        period, hence its allowance, is worked out per hour) and every ``HEALTH_FULL_EVERY``; in
        between only the rows whose ``updated_at`` is after the database's time at the last read,
        less ``CHANGES_OVERLAP`` (a row's ``updated_at`` is taken before its transaction commits).
        A write the change read misses (a commit later than that) can only leave a flag as it was
        until the next full read: a success not yet seen (stale a little longer), or a credential
        expiry moved earlier.
        """
        now, settings, pairs = self.app.clock(), self.settings, self._pairs  # one configuration, even if a reload lands
        full = self._health_full_due(now, settings)
        since = None if full or self._health_mark is None else self._health_mark - CHANGES_OVERLAP
        try:
            states, self._health_mark = self.app.state_changes.since(since)
        except RotatorError as e:
            log.warning("health.state_unavailable", error=e.code)
            return
        if full:
            self._stale.reset({key: self.app.stale_allowance(secret) for key, secret in pairs.items()}, states)
            self._health_full = (now, settings)
        else:
            self._stale.update(states)
        for key, flag in self._stale.changed(now=now):
            self.app.metrics.pair_stale(target=key.target, secret=key.secret, stale=flag)

    def _health_full_due(self, now: datetime, settings: Settings) -> bool:
        if self._health_full is None:
            return True
        at, read_for = self._health_full
        new_hour = _hour(now) != _hour(at)  # App.stale_allowance works a cron's period out per hour
        return read_for is not settings or now - at >= HEALTH_FULL_EVERY or new_hour

    # --- http -----------------------------------------------------------------------

    def _start_http(self) -> None:
        if not self.settings.http.enabled:
            return
        probes = Probes(live=self._live, ready=self._ready, metrics=self.app.metrics.exposition, status=self.status)
        self._http = HealthServer(listen=self.settings.http.listen, probes=probes, token=self.app.http_token)
        self._http.start()

    def _live(self) -> bool:
        """Alive while starting up and stopping; in between, while the scheduler runs and progress is made."""
        if not self._scheduling.is_set() or self._stop.is_set():
            return True
        problem = "the scheduler stopped" if not self.scheduler.running else None
        problem = problem or liveness(
            Progress(heartbeat_at=self._heartbeat_at, stuck_since=self._stuck_since),
            now=self.app.clock(),
            timeout=self.settings.rotation.progress_timeout,
        )
        if problem != self._not_alive:
            if problem is not None:
                log.error("worker.not_alive", problem=problem)
            self._not_alive = problem
        return problem is None

    def _ready(self) -> dict[str, str]:
        """Each dependency by name, from a check at most a few seconds old."""
        cached = self._ready_cache
        if cached is not None and time.monotonic() - cached[0] < READY_CACHE_SECONDS:
            return cached[1]
        checks: dict[str, str] = {}
        checks_by_name: tuple[tuple[str, Callable[[], object]], ...] = (
            ("database", self.app.require_schema),
            ("vault", lambda: self.app.vault_session.check()),  # noqa: PLW0108 (built inside the probe)
        )
        for name, check in checks_by_name:
            try:
                check()
                checks[name] = "ok"
            except RotatorError as e:
                checks[name] = f"{e.code}: {e}"
        checks["instance_lock"] = self._lock_problem or ("ok" if self._scheduling.is_set() else "not taken yet")
        checks["scheduler"] = "ok" if self.scheduler.running else "not started"
        self._ready_cache = (time.monotonic(), checks)
        return checks

    def status(self) -> dict[str, Any]:
        rows = status_rows(
            self._specs,
            self.app.state.load(),
            now=self.app.clock(),
            allowance=self.app.stale_allowance,
            holds=self.app.controls.everything(),
        )
        return {**summary(rows), "rotations": rows}


def pairs_of(groups: Mapping[str, list[SecretSpec]]) -> dict[RotationKey, SecretSpec]:
    """Every pair the jobs sweep, and the entry that feeds it."""
    return spec_pairs(pairs_specs(groups))


def pairs_specs(groups: Mapping[str, list[SecretSpec]]) -> list[SecretSpec]:
    """Every entry, in job order."""
    return [secret for entries in groups.values() for secret in entries]


def jobs_of_pairs(
    groups: Mapping[str, list[SecretSpec]], pairs: Mapping[RotationKey, SecretSpec]
) -> dict[RotationKey, str]:
    """Which job sweeps each pair (keyed by ``pairs``' own keys: one key object per pair, not two)."""
    key_of = {key: key for key in pairs}
    return {key_of[key]: job for job, entries in groups.items() for secret in entries for key in secret.pairs()}


def _recheck_job(secret: SecretSpec) -> str:
    return f"recheck:{secret.name}@{'+'.join(secret.targets)}"


def overdue(
    pairs: Iterable[RotationKey], states: Mapping[RotationKey, RotationState], *, now: datetime
) -> list[RotationKey]:
    """The pairs never rotated, or whose next run is not after ``now``."""
    return [key for key in pairs if _due(states.get(key), now)]


def _entries_of(keys: Iterable[RotationKey], pairs: Mapping[RotationKey, SecretSpec]) -> list[SecretSpec]:
    """The distinct ``[[secrets]]`` entries behind ``keys``, in configuration order."""
    entries: dict[int, SecretSpec] = {}
    for key in keys:
        secret = pairs[key]
        entries.setdefault(id(secret), secret)
    return list(entries.values())


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _due(state: RotationState | None, now: datetime) -> bool:
    return state is None or state.next_run_at is None or state.next_run_at <= now
