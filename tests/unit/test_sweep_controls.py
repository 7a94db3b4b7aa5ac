"""Operator controls in the sweep: paused pairs are skipped before any claim, pinned pairs read their version."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.config import VerifyConfig, WindowConfig
from service.controls import Pause, Pin, Scope
from service.engine import Rotator, RotatorOptions
from service.model import EventType, Outcome, RotationKey, SecretSpec, Trigger, VerificationOutcome
from service.report import result_line
from service.rotation import SweepReport, SweepRequest
from service.status import render_table, status_rows
from service.windows import blocked
from tests.fakes import FakeControls
from tests.unit.test_sweep import World, secret

EU, US = RotationKey("eu", "acme-registry"), RotationKey("us", "acme-registry")


class ControlledWorld(World):
    """The fakes of ``World``, with operator controls wired into the rotator."""

    def __init__(self) -> None:
        super().__init__()
        self.controls = FakeControls()
        self.rewire(self.rotator._options)

    def rewire(self, options: RotatorOptions) -> None:
        """A new rotator over the same fakes, with ``options``."""
        self.rotator.close()
        self.rotator = Rotator(
            source=self.source,
            stores=self.stores.__getitem__,
            audit=self.audit,
            state=self.state,
            verifier=self.verifier,
            listener=self.listener,
            clock=self.clock,
            options=options,
            controls=self.controls,
        )

    def run(self, *secrets: SecretSpec, **kwargs: object) -> SweepReport:
        request = SweepRequest(secrets=list(secrets) or [secret(targets=("eu", "us"))], **kwargs)  # type: ignore[arg-type]
        return self.rotator.sweep(request)


@pytest.fixture
def world() -> Iterator[ControlledWorld]:
    w = ControlledWorld()
    yield w
    w.rotator.close()


def _pause(scope: Scope) -> Pause:
    return Pause(scope=scope, operator="alice", reason="incident 7")


def test_a_paused_pair_is_not_claimed_read_or_written(world: ControlledWorld) -> None:
    """Pausing eu: its result is ``paused`` (who and why), no lease, no Vault read, no audit row; us rotates."""
    world.controls.pauses.append(_pause(Scope(target="eu")))
    report = world.run()
    outcomes = {result.key: result.outcome for result in report.results}
    assert outcomes == {EU: Outcome.PAUSED, US: Outcome.APPLIED}
    [paused] = [result for result in report.results if result.key == EU]
    assert paused.message is not None
    assert "alice" in paused.message
    assert "incident 7" in paused.message
    assert world.stores["eu"].calls == []
    assert EU not in world.state.states
    assert {event.target for event in world.audit.events()} == {"us"}
    assert not paused.failed


def test_the_kill_switch_stops_every_pair_and_reads_nothing(world: ControlledWorld) -> None:
    """``pause --all``: every pair paused, Vault never read, nothing in the trail."""
    world.controls.pauses.append(_pause(Scope()))
    report = world.run(secret(targets=("eu", "us")), secret("other-registry", path="registries/other"))
    assert {result.outcome for result in report.results} == {Outcome.PAUSED}
    assert world.source.reads == []
    assert world.audit.records == []


def test_pauses_and_pins_are_read_once_per_sweep(world: ControlledWorld) -> None:
    """One holds() call asks about every pair of the sweep at once (one batched query in PostgreSQL)."""
    world.run(secret(targets=("eu", "us")), secret("other-registry", path="registries/other", targets=("eu",)))
    assert world.controls.reads == [3]


def test_ignore_pause_rotates_a_paused_pair(world: ControlledWorld) -> None:
    """``once --force --ignore-pause``: the pause does not hold; the forced write names the operator."""
    world.run()
    world.controls.pauses.append(_pause(Scope()))
    before = len(world.audit.records)
    report = world.run(trigger=Trigger.MANUAL, force=True, ignore_pause=True, operator="bob", reason="hotfix")
    assert {result.outcome for result in report.results} == {Outcome.APPLIED}
    written = world.audit.events()[before:]
    assert {event.event for event in written} == {EventType.FORCED, EventType.INTENT, EventType.APPLIED}
    assert {(event.operator, event.reason) for event in written} == {("bob", "hotfix")}
    messages = [event.message or "" for event in written if event.event is EventType.FORCED]
    assert all("(--force)" in message and "paused (everything (--all)) by alice" in message for message in messages)


def test_a_manual_sweep_records_the_operator_and_reason_on_intent_and_outcome(world: ControlledWorld) -> None:
    """The operator's name and reason sit on the intent and the applied row, beside the worker's actor."""
    world.run(trigger=Trigger.MANUAL, operator="alice@laptop", reason="new robot account")
    events = world.audit.events()
    assert {event.event for event in events} == {EventType.INTENT, EventType.APPLIED}
    assert {(event.operator, event.reason, event.actor) for event in events} == {
        ("alice@laptop", "new robot account", "rotator/test@host")
    }


def test_a_scheduled_sweep_has_no_operator(world: ControlledWorld) -> None:
    """The worker's own rotations carry no operator."""
    world.run()
    assert {event.operator for event in world.audit.events()} == {None}


def test_a_pinned_pair_reads_its_pinned_version_and_keeps_it(world: ControlledWorld) -> None:
    """After a rollback to v1, a newer version in Vault is not written to the pinned pair; the other pair gets it."""
    world.run()
    world.source.put("registries/acme", "robot", "version-two")
    world.controls.pins[EU] = Pin(key=EU, version=1, operator="alice", reason="v2 is broken")
    world.clock.advance(timedelta(hours=7))
    report = world.run()
    outcomes = {result.key: (result.outcome, result.source_version) for result in report.results}
    assert outcomes == {EU: (Outcome.UNCHANGED, 1), US: (Outcome.APPLIED, 2)}
    assert "version-two" not in world.stores["eu"].values["acme-registry"]
    assert "version-two" in world.stores["us"].values["acme-registry"]


def test_removing_the_pin_brings_the_current_version_back(world: ControlledWorld) -> None:
    """Once unpinned, the next sweep writes the current version to the pair."""
    world.source.put("registries/acme", "robot", "version-two")
    world.controls.pins[EU] = Pin(key=EU, version=1, operator="alice", reason="v2 is broken")
    world.run()
    del world.controls.pins[EU]
    world.clock.advance(timedelta(hours=7))
    [result] = world.run(secret()).results
    assert (result.outcome, result.source_version) == (Outcome.APPLIED, 2)
    assert "version-two" in world.stores["eu"].values["acme-registry"]


def test_recovery_does_not_rotate_a_paused_pair_again(world: ControlledWorld) -> None:
    """An interrupted intent of a paused pair is closed as interrupted and not written again."""
    world.run(secret())
    [intent, _] = world.audit.records
    world.audit.records.pop()  # the outcome never made it: the intent is open
    world.controls.pauses.append(_pause(Scope()))
    report = world.rotator.recover({EU: secret()})
    assert [result.outcome for result in report.results] == [Outcome.INTERRUPTED]
    assert world.audit.events()[-1].event is EventType.INTERRUPTED
    assert world.stores["eu"].calls == [("PATCH", "acme-registry")]
    assert intent.event.event is EventType.INTENT


def test_recovery_rotates_a_pinned_pair_again_at_its_pin(world: ControlledWorld) -> None:
    """An interrupted intent of a pinned pair is closed, and the pair is written again from its pinned version."""
    world.source.put("registries/acme", "robot", "version-two")
    world.run(secret())
    world.audit.records.pop()  # the outcome never made it: the intent is open
    world.controls.pins[EU] = Pin(key=EU, version=1, operator="alice", reason="v2 is broken")
    report = world.rotator.recover({EU: secret()})
    assert [(r.outcome, r.source_version) for r in report.results] == [(Outcome.APPLIED, 1)]
    assert "version-two" not in world.stores["eu"].values["acme-registry"]


def test_a_recovery_pass_with_no_open_intent_asks_about_no_pair(world: ControlledWorld) -> None:
    """The periodic pass over every configured pair reads no pause or pin while nothing is open."""
    world.run(secret())
    world.controls.reads.clear()
    pairs = {RotationKey("eu", f"registry-{n}"): secret(f"registry-{n}") for n in range(5_000)}
    report = world.rotator.recover(pairs | {EU: secret()})
    assert (report.results, world.controls.reads) == ([], [])
    world.run(secret(), force=True)
    world.audit.records.pop()  # now one intent is open: only its pair is asked about
    world.controls.reads.clear()
    [result] = world.rotator.recover(pairs | {EU: secret()}).results
    assert (result.key, world.controls.reads) == (EU, [1])


def test_paused_and_pinned_pairs_show_in_status_and_in_once_output(world: ControlledWorld) -> None:
    """``status`` rows name the pause and the pin; the ``once`` line of a paused pair says who paused it."""
    world.controls.pauses.append(_pause(Scope(target="eu")))
    world.controls.pins[US] = Pin(key=US, version=3, operator="bob", reason="rollback")
    holds = world.controls.holds([EU, US])
    rows = status_rows(
        [secret(targets=("eu", "us"))],
        world.state.states,
        now=world.clock.now,
        allowance=lambda _: timedelta(hours=7),
        holds=holds,
    )
    assert [(row["hold"], row["pinned_version"]) for row in rows] == [("paused", None), ("pinned v3", 3)]
    assert rows[0]["paused"] is not None
    assert "incident 7" in rows[0]["paused"]
    assert "HOLD" in render_table(rows).splitlines()[0]
    [line] = [result_line(r) for r in world.run(secret()).results]
    assert line.startswith("paused")
    assert "by alice" in line


def test_a_pause_of_one_secret_leaves_the_others(world: ControlledWorld) -> None:
    """A pause names a secret: another secret on the same target still rotates."""
    world.controls.pauses.append(_pause(Scope(secret="acme-registry")))
    other = secret("other-registry", path="registries/other")
    world.source.put("registries/other", "robot", "other-password")
    report = world.run(secret(), other)
    assert [result.outcome for result in report.results] == [Outcome.PAUSED, Outcome.APPLIED]


def test_a_run_inside_a_deny_window_is_deferred_to_its_end(world: ControlledWorld) -> None:
    """Inside a deny window: ``deferred``, nothing read or written, the state's next run is the window's end."""
    window = WindowConfig(kind="deny", cron="0 11 * * *", duration="2h")  # type: ignore[arg-type]
    world.rewire(replace(world.rotator._options, window_block=lambda s, now: blocked([window], now)))
    world.clock.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    [result] = world.run(secret()).results
    end = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    assert (result.outcome, result.next_run_at) == (Outcome.DEFERRED, end)
    assert result.message is not None
    assert "deny window" in result.message
    assert world.source.reads == []
    assert world.audit.records == []
    state = world.state.states[EU]
    assert (state.last_outcome, state.next_run_at, state.consecutive_failures) == ("deferred", end, 0)
    assert not result.failed
    world.clock.now = end
    [after] = world.run(secret()).results
    assert after.outcome is Outcome.APPLIED


def test_a_rollback_is_verified_at_the_registry_and_a_refused_version_is_not_written(world: ControlledWorld) -> None:
    """Pinned to v1 with verification on: the registry's refusal of v1 is ``rejected`` and AI Core keeps v2."""
    verified = secret(verify=VerifyConfig(mode="registry"))
    world.source.put("registries/acme", "robot", "version-two")
    world.run(verified)
    world.controls.pins[EU] = Pin(key=EU, version=1, operator="alice", reason="v2 is broken")
    world.verifier.outcomes["registry.acme.example"] = VerificationOutcome.AUTH_FAILED
    [result] = world.run(verified, trigger=Trigger.ROLLBACK, operator="alice", reason="v2 is broken").results
    assert (result.outcome, result.source_version) == (Outcome.REJECTED, 1)
    assert "version-two" in world.stores["eu"].values["acme-registry"]
    rejected = world.audit.events(EventType.REJECTED)[-1]
    assert (rejected.trigger, rejected.operator, rejected.source_version) == (Trigger.ROLLBACK, "alice", 1)
