"""Scheduling by pair, and start-up catch-up: every overdue pair runs at once, together, in one sweep."""

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
    "ap": TargetConfig(service_key={"env": "K2"}),
}


def secret(name: str, *targets: str, path: str | None = None) -> SecretConfig:
    return SecretConfig(
        name=name, targets=list(targets or ("eu",)), source=SourceConfig(path=path or f"registries/{name}")
    )


def state(target: str, name: str, *, next_run_in: timedelta | None) -> RotationState:
    return RotationState(key=RotationKey(target, name), next_run_at=None if next_run_in is None else NOW + next_run_in)


EU, US = RotationKey("eu", "acme"), RotationKey("us", "acme")


def test_never_rotated_is_overdue() -> None:
    """A pair with no state is due at once."""
    assert overdue([RotationKey("eu", "acme-registry")], {}, now=NOW) == [RotationKey("eu", "acme-registry")]


def test_next_run_in_the_future_everywhere_is_not_overdue() -> None:
    """Pairs whose next run is after now wait for their slot."""
    states = {
        s.key: s
        for s in [
            state("eu", "acme", next_run_in=timedelta(hours=1)),
            state("us", "acme", next_run_in=timedelta(seconds=1)),
        ]
    }
    assert overdue([EU, US], states, now=NOW) == []


def test_only_the_overdue_target_is_due() -> None:
    """A pair past its next run (or without one) is due; a next run exactly now is due; the other pair is not."""
    for late in (timedelta(0), -timedelta(minutes=5), None):
        states = {
            s.key: s
            for s in [state("eu", "acme", next_run_in=timedelta(hours=1)), state("us", "acme", next_run_in=late)]
        }
        assert overdue([EU, US], states, now=NOW) == [US]


def test_one_name_on_three_targets_with_three_sources_schedules_every_pair() -> None:
    """Three [[secrets]] entries share a name, each with its own target and KV path: all three pairs are scheduled."""
    entries = [secret("reg-000", target, path=f"robots/{target}") for target in ("eu", "us", "ap")]
    worker = worker_for(entries, {})
    assert sorted(str(key) for key in worker._pairs) == ["ap/reg-000", "eu/reg-000", "us/reg-000"]
    assert {key: worker._pairs[key].source.path for key in worker._pairs} == {
        RotationKey(t, "reg-000"): f"robots/{t}" for t in ("eu", "us", "ap")
    }
    [(job, group)] = worker._groups.items()
    assert job == "rotate:reg-000"
    specs = worker._specs
    assert group == specs  # one job sweeps all three entries, so all three pairs rotate
    assert [spec.source.path for spec in specs] == [entry.source.path for entry in entries]
    worker._catch_up()
    [(_, _, (request,))] = worker.scheduler.once_jobs  # type: ignore[attr-defined]
    assert request.secrets == specs


def test_a_name_on_two_schedules_gets_a_job_for_each() -> None:
    """Entries of one name with different schedules are scheduled apart, neither dropped."""
    fast = SecretConfig(
        name="reg-000", targets=["eu"], source=SourceConfig(path="a"), schedule={"every": "1h"}
    )  # fmt: skip
    slow = secret("reg-000", "us", path="b")
    worker = worker_for([fast, slow], {})
    assert {job: [e.targets for e in group] for job, group in worker._groups.items()} == {
        "rotate:reg-000": [("eu",)],
        "rotate:reg-000~2": [("us",)],
    }


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
    app.adopt = lambda settings, **_: setattr(app, "settings", settings)
    worker = Worker(app)  # type: ignore[arg-type]  # only settings, adopt, clock and state are used here
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
