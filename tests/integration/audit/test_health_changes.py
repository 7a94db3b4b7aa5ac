"""The worker's health pass against a real PostgreSQL: between full reads it reads only the states written since."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.app import App
from service.audit.changes import StateChanges
from service.audit.db import make_engine
from service.audit.instance import InstanceLock
from service.audit.state import PostgresStateStore
from service.config import DatabaseConfig, SecretConfig, Settings, SourceConfig, TargetConfig, load_settings
from service.model import RotationKey, RotationState
from service.worker import CHANGES_OVERLAP, Worker
from tests.fakes import NOW

ACME, OTHER = RotationKey("eu", "acme"), RotationKey("eu", "other")
TTL = timedelta(minutes=5)


class Clock:
    """The worker's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = NOW + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def other_replica(database_url: str, engine: Engine) -> Iterator[PostgresStateStore]:
    """A second process's state store: its own engine and instance lock."""
    own = make_engine(DatabaseConfig(url=database_url, pool_size=2), password=None)
    lock = InstanceLock(own, "replica-b")
    lock.acquire()
    yield PostgresStateStore(own, instance=lock)
    lock.close()
    own.dispose()


def settings_for(database_url: str, *, every: str) -> Settings:
    """eu/acme and eu/other on one schedule, misfire grace 10 minutes."""
    return Settings(
        targets={"eu": TargetConfig(service_key={"file": Path("/keys/eu.json")})},
        secrets=[
            SecretConfig(name=name, targets=["eu"], source=SourceConfig(path=f"registries/{name}"))
            for name in ("acme", "other")
        ],
        defaults={"schedule": {"every": every}},
        rotation={"misfire_grace": "10m"},
        database={"url": database_url},
    )


@pytest.fixture
def worker(database_url: str, engine: Engine) -> Iterator[tuple[Worker, Clock]]:
    """A worker (not started) for eu/acme and eu/other, every hour, on the migrated database."""
    clock = Clock()
    app = App(settings_for(database_url, every="1h"), clock=clock)
    yield Worker(app), clock
    app.close()


def write(store: PostgresStateStore, state: RotationState) -> None:
    """Claim the pair, save its state and release it, as a sweep of that replica does."""
    grants = store.claim([state.key], owner="replica-b", ttl=TTL, due_by=None)
    assert store.save([state], release=list(grants.values())) == []


def stale_value(worker: Worker, key: RotationKey) -> float | None:
    labels = {"target": key.target, "secret": key.secret}
    return worker.app.metrics.registry.get_sample_value("rotator_secret_stale", labels)


def test_a_state_another_replica_writes_is_seen_by_the_next_incremental_pass(
    worker: tuple[Worker, Clock], other_replica: PostgresStateStore
) -> None:
    """Fresh, then the other replica saves an old success for one pair: the next pass (not a full one) flags it."""
    w, clock = worker
    write(other_replica, RotationState(key=ACME, last_success_at=NOW))
    write(other_replica, RotationState(key=OTHER, last_success_at=NOW))
    w._export_health()
    full_at = w._health_full
    assert (stale_value(w, ACME), stale_value(w, OTHER)) == (0.0, 0.0)
    write(other_replica, RotationState(key=OTHER, last_success_at=NOW - timedelta(hours=2), consecutive_failures=4))
    clock.now += timedelta(seconds=30)
    w._export_health()
    assert w._health_full is full_at  # an incremental pass
    assert (stale_value(w, ACME), stale_value(w, OTHER)) == (0.0, 1.0)
    write(other_replica, RotationState(key=OTHER, last_success_at=NOW))
    clock.now += timedelta(seconds=30)
    w._export_health()
    assert w._health_full is full_at
    assert stale_value(w, OTHER) == 0.0


def test_a_pair_turns_stale_by_time_alone_between_full_passes(worker: tuple[Worker, Clock]) -> None:
    """No state is written; once its success is older than period + grace (70 min), an incremental pass flags it."""
    w, clock = worker
    old = RotationState(key=ACME, last_success_at=NOW - timedelta(minutes=65))
    w.app.state.save([old, RotationState(key=OTHER, last_success_at=NOW)])
    w._export_health()
    full_at = w._health_full
    assert (stale_value(w, ACME), stale_value(w, OTHER)) == (0.0, 0.0)
    clock.now = NOW + timedelta(minutes=5)  # exactly 70 minutes: not older than allowed yet
    w._export_health()
    assert stale_value(w, ACME) == 0.0
    clock.now = NOW + timedelta(minutes=5, microseconds=1)
    w._export_health()
    assert w._health_full is full_at  # no full read: the moment it turns stale was kept
    assert (stale_value(w, ACME), stale_value(w, OTHER)) == (1.0, 0.0)


def test_a_write_the_change_read_missed_is_caught_by_the_next_full_pass(
    worker: tuple[Worker, Clock], engine: Engine, other_replica: PostgresStateStore
) -> None:
    """A row written before the overlap is not read incrementally; ten minutes on, the full read has it."""
    w, clock = worker
    write(other_replica, RotationState(key=ACME, last_success_at=NOW))
    write(other_replica, RotationState(key=OTHER, last_success_at=NOW))
    w._export_health()
    write(other_replica, RotationState(key=OTHER, last_success_at=None, consecutive_failures=1))
    with engine.begin() as conn:  # as if its commit had landed long after its clock_timestamp()
        backdated = sa.text("UPDATE rotation_state SET updated_at = updated_at - :late WHERE secret = 'other'")
        conn.execute(backdated, {"late": CHANGES_OVERLAP * 2})
    clock.now += timedelta(seconds=30)
    w._export_health()
    assert stale_value(w, OTHER) == 0.0  # missed by the change read
    clock.now += timedelta(minutes=10)
    w._export_health()
    assert stale_value(w, OTHER) == 1.0


def test_changes_since_a_moment_are_the_rows_written_after_it(
    engine: Engine, other_replica: PostgresStateStore
) -> None:
    """Every state when asked from None; from the database's time a read returned, only the rows written after it."""
    changes = StateChanges(engine)
    states, began = changes.since(None)
    assert states == {}
    write(other_replica, RotationState(key=ACME, last_success_at=NOW, consecutive_failures=2))
    states, later = changes.since(began)
    assert states == {ACME: RotationState(key=ACME, last_success_at=NOW, consecutive_failures=2)}
    assert later > began
    assert changes.since(later)[0] == {}
    write(other_replica, RotationState(key=OTHER, last_success_at=NOW))
    assert list(changes.since(later)[0]) == [OTHER]
    assert set(changes.since(None)[0]) == {ACME, OTHER}


def config_file(path: Path, database_url: str, *, every: str) -> Path:
    """``settings_for`` as a file, for ``Worker.reload``."""
    secrets = "".join(
        f'[[secrets]]\nname = "{name}"\ntargets = ["eu"]\nregistries = ["registry.example.com"]\n'
        f'source = {{path = "registries/{name}"}}\n'
        for name in ("acme", "other")
    )
    path.write_text(
        f'[database]\nurl = "{database_url}"\n[rotation]\nmisfire_grace = "10m"\n'
        f'[defaults.schedule]\nevery = "{every}"\n[targets.eu]\nservice_key = {{file = "/keys/eu.json"}}\n' + secrets
    )
    return path


def test_a_reload_reads_every_state_again_with_the_new_allowances(
    database_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schedule shortened by a reload (1h -> 10m) flags a 30-minute-old success at the next pass, unwritten."""
    monkeypatch.setattr("service.collector.settle", lambda: None)  # no gc.freeze in the test process
    path = config_file(tmp_path / "rotator.toml", database_url, every="1h")
    clock = Clock()
    app = App(load_settings(path), clock=clock)
    w = Worker(app, config_path=path)
    w._keep_specs_only()  # as run() does first
    w.app.state.save(
        [
            RotationState(key=ACME, last_success_at=NOW - timedelta(minutes=30)),
            RotationState(key=OTHER, last_success_at=NOW),
        ]
    )
    w._export_health()
    full_at = w._health_full
    assert (stale_value(w, ACME), stale_value(w, OTHER)) == (0.0, 0.0)
    config_file(path, database_url, every="10m")
    assert w.reload()
    assert w.settings.secrets == []  # the reloaded entries are kept as specs only
    assert len(w.app.pairs()) == 2
    clock.now += timedelta(seconds=30)
    w._export_health()
    assert w._health_full is not full_at
    assert (stale_value(w, ACME), stale_value(w, OTHER)) == (1.0, 0.0)
    app.close()
