"""Start-up catch-up: every overdue secret runs at once, together, in one sweep."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from service.config import SecretConfig, Settings, SourceConfig, TargetConfig
from service.model import RotationKey, RotationState, Trigger
from service.worker import Worker, overdue
from tests.fakes import NOW

TARGETS = {
    "eu": TargetConfig(service_key={"file": Path("/keys/eu.json")}),
    "us": TargetConfig(service_key={"env": "K"}),
}


def secret(name: str, *targets: str) -> SecretConfig:
    return SecretConfig(name=name, targets=list(targets or ("eu",)), source=SourceConfig(path=f"registries/{name}"))


def state(target: str, name: str, *, next_run_in: timedelta | None) -> RotationState:
    return RotationState(key=RotationKey(target, name), next_run_at=None if next_run_in is None else NOW + next_run_in)


def test_never_rotated_is_overdue() -> None:
    """A secret with no state on a target is due at once."""
    assert overdue([secret("acme-registry")], {}, now=NOW) == ["acme-registry"]


def test_next_run_in_the_future_everywhere_is_not_overdue() -> None:
    """A secret whose every target has its next run after now waits for its slot."""
    states = {
        s.key: s
        for s in [
            state("eu", "acme", next_run_in=timedelta(hours=1)),
            state("us", "acme", next_run_in=timedelta(seconds=1)),
        ]
    }
    assert overdue([secret("acme", "eu", "us")], states, now=NOW) == []


def test_one_overdue_target_makes_the_secret_due() -> None:
    """One target past its next run (or without one) is enough; a next run exactly now is due."""
    for late in (timedelta(0), -timedelta(minutes=5), None):
        states = {
            s.key: s
            for s in [state("eu", "acme", next_run_in=timedelta(hours=1)), state("us", "acme", next_run_in=late)]
        }
        assert overdue([secret("acme", "eu", "us")], states, now=NOW) == ["acme"]


class RecordingScheduler:
    def __init__(self, regular: dict[str, Any] | None = None) -> None:
        self.once_jobs: list[tuple[str, Any, tuple[Any, ...]]] = []
        self.regular = regular or {}

    def next_run_time(self, job_id: str) -> Any:
        return self.regular.get(job_id)

    def once(self, job_id: str, at: Any, func: Any, *args: Any) -> None:
        self.once_jobs.append((job_id, at, args))


def worker_for(
    secrets: list[SecretConfig], states: dict[RotationKey, RotationState], regular: dict[str, Any] | None = None
) -> Worker:
    settings = Settings(targets=TARGETS, secrets=secrets, defaults={"schedule": {"every": "6h"}})
    app = SimpleNamespace(settings=settings, clock=lambda: NOW, state=SimpleNamespace(load=lambda: states))
    worker = Worker(app)  # type: ignore[arg-type]  # only settings, clock and state are used here
    worker.scheduler = RecordingScheduler(regular)  # type: ignore[assignment]
    return worker


def test_catch_up_is_one_sweep_of_every_overdue_secret() -> None:
    """All overdue secrets go into one start-up sweep, in configuration order; the others wait."""
    secrets = [secret("first-registry"), secret("fresh-registry"), secret("third-registry", "eu", "us")]
    fresh = state("eu", "fresh-registry", next_run_in=timedelta(hours=5))
    worker = worker_for(secrets, {fresh.key: fresh})
    worker._catch_up()
    [(job_id, at, (request,))] = worker.scheduler.once_jobs  # type: ignore[attr-defined]
    assert (job_id, at) == ("catch-up", NOW)
    assert [s.name for s in request.secrets] == ["first-registry", "third-registry"]
    assert (request.trigger, request.due_by, request.force) == (Trigger.STARTUP, NOW, False)


def test_nothing_overdue_schedules_nothing() -> None:
    """When every secret waits for its slot, start-up adds no job."""
    fresh = state("eu", "fresh-registry", next_run_in=timedelta(hours=5))
    worker = worker_for([secret("fresh-registry")], {fresh.key: fresh})
    worker._catch_up()
    assert worker.scheduler.once_jobs == []  # type: ignore[attr-defined]


def test_catch_up_leaves_secrets_whose_regular_run_is_seconds_away() -> None:
    """An overdue secret whose regular run fires within seconds is left to it (no duplicate, skipped run)."""
    secrets = [secret("first-registry"), secret("second-registry")]
    worker = worker_for(secrets, {}, regular={"rotate:second-registry": NOW + timedelta(seconds=2)})
    worker._catch_up()
    [(_, _, (request,))] = worker.scheduler.once_jobs  # type: ignore[attr-defined]
    assert [s.name for s in request.secrets] == ["first-registry"]
