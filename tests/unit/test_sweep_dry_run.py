"""A dry run goes through the same guard as a real rotation: a broken source fails one pair, never the sweep."""

from __future__ import annotations

import pytest

from service.config import SourceConfig
from service.model import Outcome
from service.rotation import SweepRequest
from tests.unit.test_sweep import World, secret


class SourceBug(Exception):
    """Stands for a bug in a source adapter: not a RotatorError."""


@pytest.fixture
def world() -> World:
    w = World()
    yield w
    w.rotator.close()


def broken_read(source: SourceConfig) -> None:
    raise SourceBug(f"unexpected shape at {source.path}")


def test_dry_run_with_a_source_that_raises_a_bug_reports_a_failure(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dry-run over a source whose read raises a non-RotatorError: the pair fails, the sweep returns."""
    monkeypatch.setattr(world.source, "read", broken_read)
    report = world.rotator.sweep(SweepRequest(secrets=[secret(targets=("eu", "us"))], dry_run=True))
    assert [result.outcome for result in report.results] == [Outcome.FAILED, Outcome.FAILED]
    assert {result.message for result in report.results} == {"internal error: SourceBug"}
    assert world.audit.records == []
    assert world.stores["eu"].calls == []
    assert world.state.states == {}


def test_real_sweep_with_the_same_bug_fails_the_same_way(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real path reports the same failure for the same bug, and releases its lease."""
    monkeypatch.setattr(world.source, "read", broken_read)
    (result,) = world.sweep().results
    assert (result.outcome, result.message) == (Outcome.FAILED, "internal error: SourceBug")
    assert world.state.leases == {}
