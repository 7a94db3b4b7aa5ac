"""`rotator run`: the long-running worker.

Start-up: refuse an old schema, log in to Vault, hold this process's instance lock,
close intents a dead process left open (and rotate those secrets again at once), then
schedule one job per secret and catch up on what is overdue. SIGTERM / SIGINT: stop
scheduling, give in-flight rotations ``shutdown_grace`` to finish and record their
outcomes, revoke the Vault token, exit 0.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, NoReturn

from service import logs
from service.app import App
from service.config import SecretConfig
from service.errors import RotatorError
from service.http import HealthServer, Probes
from service.model import Outcome, RotationKey, RotationState, Trigger
from service.scheduler import Scheduler, every, trigger_for
from service.status import status_rows
from service.sweep import SweepReport, SweepRequest

log = logs.get_logger("rotator.worker")

SOON_ENOUGH = timedelta(seconds=5)  # a regular run this close makes an extra one pointless
VAULT_MAINTENANCE_EVERY = timedelta(seconds=5)  # cheap: maintain() acts only when renewal is due


class Worker:
    """Schedules sweeps and keeps the process healthy until told to stop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.scheduler = Scheduler(misfire_grace=self.settings.rotation.misfire_grace)
        self._stop = threading.Event()
        self._scheduling = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._http: HealthServer | None = None
        self._secrets = {secret.name: secret for secret in self.settings.secrets}

    # --- lifecycle ----------------------------------------------------------------

    def run(self) -> int:
        self._install_signal_handlers()
        self.app.require_schema()
        self.app.vault_session.check()
        self._maintain_vault()  # exports the token's expiry now, not 5 s later
        self._start_http()
        self._recover()
        self._schedule()
        self.scheduler.start()
        self._catch_up()  # after start: the regular jobs know their next run times
        self._scheduling.set()
        log.info(
            "worker.started", secrets=len(self._secrets), targets=len(self.settings.targets), instance=self.app.instance
        )
        self._stop.wait()
        return self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, _: FrameType | None) -> None:
            log.info("worker.stopping", signal=signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _shutdown(self) -> int:
        self.scheduler.shutdown(wait=False)
        grace = self.settings.rotation.shutdown_grace.total_seconds()
        with self._idle:
            finished = self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)
        if not finished:
            log.warning(
                "worker.grace_expired",
                in_flight=self._in_flight,
                note="their intents stay open; the next start closes them as interrupted",
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
        os._exit(0)  # rotation threads still run; the lease and open intents make this safe

    # --- jobs -----------------------------------------------------------------------

    def _schedule(self) -> None:
        for name, secret in self._secrets.items():
            schedule = self.settings.schedule_of(secret)
            self.scheduler.add(f"rotate:{name}", trigger_for(schedule, name), self.tick, name, Trigger.SCHEDULE)
            if secret.verify.mode == "registry" and secret.verify.recheck_every is not None:
                self._schedule_recheck(secret)
        self.scheduler.add("vault:maintain", every(VAULT_MAINTENANCE_EVERY), self._maintain_vault)

    def _schedule_recheck(self, secret: SecretConfig) -> None:
        if secret.source.kind == "dynamic":
            log.info(
                "verify.recheck_skipped", secret=secret.name, reason="a dynamic source is verified at each rotation"
            )
            return
        assert secret.verify.recheck_every is not None
        self.scheduler.add(f"recheck:{secret.name}", every(secret.verify.recheck_every), self.recheck, secret.name)

    def _catch_up(self) -> None:
        """Secrets never rotated, or overdue (e.g. the worker was down), run now instead of at their next slot."""
        request = self.catch_up_request()
        if request is not None:
            self.scheduler.once("catch-up", self.app.clock(), self._sweep, request)

    def catch_up_request(self) -> SweepRequest | None:
        """One sweep of every overdue secret: together they share its Vault reads and group commits.

        One job per secret ran them eight at a time (the scheduler's threads), one small sweep
        each: 1,000 secrets took 3.5 times the CPU and wall time of one sweep (bench/sweep.py).
        """
        now = self.app.clock()
        names = [
            name
            for name in overdue(self._secrets.values(), self.app.state.load(), now=now)
            if not self._regular_run_within(name, now)
        ]
        if not names:
            return None
        return SweepRequest(secrets=[self._secrets[name] for name in names], trigger=Trigger.STARTUP, due_by=now)

    def run_soon(self, name: str, at: datetime, trigger: Trigger = Trigger.SCHEDULE) -> None:
        """An extra run at ``at`` (e.g. before a lease ends), unless the regular job fires about then anyway."""
        if self._regular_run_within(name, at):
            return
        self.scheduler.once(f"rotate-soon:{name}", at, self.tick, name, trigger)

    def _after_window(self, name: str, at: datetime) -> None:
        """A run deferred by a window runs as the window ends (regular runs before then are not granted)."""
        regular = self.scheduler.next_run_time(f"rotate:{name}")
        if regular is not None and at <= regular <= at + SOON_ENOUGH:
            return
        self.scheduler.once(f"rotate-soon:{name}", at, self.tick, name, Trigger.SCHEDULE)

    def _regular_run_within(self, name: str, at: datetime) -> bool:
        regular = self.scheduler.next_run_time(f"rotate:{name}")
        return regular is not None and regular <= at + SOON_ENOUGH

    def tick(self, name: str, trigger: Trigger = Trigger.SCHEDULE) -> SweepReport | None:
        """One scheduled sweep of one secret on all its targets."""
        return self._sweep(SweepRequest(secrets=[self._secrets[name]], trigger=trigger, due_by=self.app.clock()))

    def recheck(self, name: str) -> SweepReport | None:
        """Verify the credential already applied against the registry again."""
        return self._sweep(SweepRequest(secrets=[self._secrets[name]], trigger=Trigger.SCHEDULE, recheck=True))

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
            return report
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _follow_up(self, report: SweepReport) -> None:
        """Bring a secret forward when its credential's lease ends before the next slot."""
        for result in report.results:
            job = self.scheduler.next_run_time(f"rotate:{result.key.secret}")
            if result.outcome is Outcome.DEFERRED and result.next_run_at is not None:
                self._after_window(result.key.secret, result.next_run_at)
            elif result.next_run_at is not None and job is not None and result.next_run_at < job:
                self.run_soon(result.key.secret, result.next_run_at)
            if job is not None:
                self.app.metrics.next_run.labels(secret=result.key.secret).set(job.timestamp())

    def _recover(self) -> None:
        report = self.app.rotator.recover(self._secrets)
        if report.results:
            log.warning("worker.recovered", interrupted=len(report.results), run_id=report.run_id)

    def _maintain_vault(self) -> None:
        try:
            self.app.vault_session.maintain()
            expires = self.app.vault_session.token_expires_at()
            if expires is not None:
                self.app.metrics.vault_token_expiry.set(expires)
        except RotatorError as e:
            log.error("vault.maintenance_failed", error=e.code, message=str(e))

    # --- http -----------------------------------------------------------------------

    def _start_http(self) -> None:
        if not self.settings.http.enabled:
            return
        probes = Probes(live=self._live, ready=self._ready, metrics=self.app.metrics.exposition, status=self.status)
        self._http = HealthServer(listen=self.settings.http.listen, probes=probes)
        self._http.start()

    def _live(self) -> bool:
        """Alive while starting up and stopping; in between, alive while the scheduler runs."""
        return not self._scheduling.is_set() or self._stop.is_set() or self.scheduler.running

    def _ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        for name, check in (("database", self.app.require_schema), ("vault", self.app.vault_session.check)):
            try:
                check()
                checks[name] = "ok"
            except RotatorError as e:
                checks[name] = f"{e.code}: {e}"
        checks["scheduler"] = "ok" if self.scheduler.running else "not started"
        return checks

    def status(self) -> list[dict[str, Any]]:
        return status_rows(self.settings.secrets, self.app.state.load(), holds=self.app.controls.everything())


def overdue(
    secrets: Iterable[SecretConfig], states: Mapping[RotationKey, RotationState], *, now: datetime
) -> list[str]:
    """Names of the secrets with a target never rotated, or whose next run is not after ``now``."""
    return [
        secret.name
        for secret in secrets
        if any(_due(states.get(RotationKey(target, secret.name)), now) for target in secret.targets)
    ]


def _due(state: RotationState | None, now: datetime) -> bool:
    return state is None or state.next_run_at is None or state.next_run_at <= now
