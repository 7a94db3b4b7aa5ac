"""What a sweep does about the things an unattended deployment meets: drift, re-pointed targets,
unknown outcomes and intents left open while every process still lives (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from service.engine.steps import SECRET_MISSING
from service.errors import AuditUnavailable, OutcomeUnknown
from service.model import EventType, Outcome, RotationKey, Trigger
from tests.unit.test_sweep import World, secret

KEY = RotationKey("eu", "acme-registry")


@pytest.fixture
def world() -> Iterator[World]:
    w = World(confirm_every=timedelta(hours=6))
    yield w
    w.rotator.close()


def kinds(world: World) -> list[EventType]:
    return [record.event.event for record in world.audit.records]


def test_an_unchanged_secret_is_looked_up_once_per_period(world: World) -> None:
    """Nothing changed: one GET per schedule period confirms the secret exists; runs in between add none."""
    world.sweep()
    world.clock.advance(timedelta(hours=1))
    world.sweep()  # applied an hour ago: confirmed by the 202, no GET
    world.clock.advance(timedelta(hours=6))
    (result,) = world.sweep().results
    assert result.outcome is Outcome.UNCHANGED
    assert world.stores["eu"].calls == [("PATCH", "acme-registry"), ("GET", "acme-registry")]
    assert world.state.states[KEY].confirmed_at == world.clock.now


def test_a_secret_deleted_in_ai_core_is_never_reported_unchanged(world: World) -> None:
    """Deleted by hand: the next confirming run fails with its own code and a `missing` audit event."""
    world.sweep()
    first_success = world.state.states[KEY].last_success_at
    world.stores["eu"].existing.discard("acme-registry")
    world.clock.advance(timedelta(hours=6))
    (result,) = world.sweep().results
    assert result.outcome is Outcome.FAILED
    assert result.error_code == SECRET_MISSING
    assert kinds(world)[-1] is EventType.MISSING
    assert world.audit.records[-1].event.error_code == SECRET_MISSING
    state = world.state.states[KEY]
    assert state.last_success_at == first_success  # LAST_SUCCESS_AT does not move on
    assert state.consecutive_failures == 1
    assert ("PATCH", "acme-registry") not in world.stores["eu"].calls[1:]


def test_a_deleted_secret_is_re_created_when_create_missing_is_set(world: World) -> None:
    """With create_missing, the missing secret is created again behind an intent that says why."""
    entry = secret(create_missing=True)
    world.sweep(entry)
    world.stores["eu"].existing.discard("acme-registry")
    world.clock.advance(timedelta(hours=6))
    (result,) = world.sweep(entry).results
    assert result.outcome is Outcome.APPLIED
    assert world.stores["eu"].calls[-2:] == [("GET", "acme-registry"), ("POST", "acme-registry")]
    intent, applied = world.audit.records[-2:]
    assert (intent.event.event, applied.event.event) == (EventType.INTENT, EventType.APPLIED)
    assert intent.event.message is not None
    assert "no longer exists" in intent.event.message
    assert "acme-registry" in world.stores["eu"].existing


def test_a_target_re_pointed_to_another_tenant_is_written(world: World) -> None:
    """Same credential, but the target's service key now names another AI Core host: it is written, and why."""
    world.sweep()
    world.stores["eu"].api_host = "api.other-tenant.example.com"
    world.clock.advance(timedelta(minutes=1))
    (result,) = world.sweep().results
    assert result.outcome is Outcome.APPLIED
    intent = world.audit.records[-2].event
    assert intent.event is EventType.INTENT
    assert intent.message is not None
    assert "re-pointed" in intent.message
    assert "api.other-tenant.example.com" in intent.message
    assert world.state.states[KEY].target_identity == "api.other-tenant.example.com sb-fake"
    world.clock.advance(timedelta(minutes=1))
    (again,) = world.sweep().results
    assert again.outcome is Outcome.UNCHANGED  # written once, not at every run


def test_a_new_client_id_on_the_same_host_is_written(world: World) -> None:
    """A service key of another client on the same host counts as another target identity."""
    world.sweep()
    world.stores["eu"].client_id = "sb-another-instance"
    (result,) = world.sweep().results
    assert result.outcome is Outcome.APPLIED


def test_a_write_that_may_have_landed_is_unknown_then_settled(world: World) -> None:
    """A timeout after sending is `unknown`, not `failed`; the next run writes again and records `applied`."""
    world.stores["eu"].fail_with["acme-registry"] = OutcomeUnknown("timed out after it was sent", status=None)
    (result,) = world.sweep().results
    assert result.outcome is Outcome.UNKNOWN
    assert result.failed
    intent, unknown = world.audit.records
    assert unknown.event.event is EventType.UNKNOWN
    assert unknown.event.intent_seq == intent.seq
    assert world.audit.open_intents() == []  # resolved as unknown, not left open
    assert world.state.states[KEY].fingerprint is None  # not claimed as applied
    retry_at = world.state.states[KEY].next_run_at
    assert retry_at is not None
    assert retry_at < world.clock.now + timedelta(hours=1)  # retried after a backoff, not a period later
    world.stores["eu"].fail_with.clear()
    world.clock.advance(timedelta(minutes=5))
    (settled,) = world.sweep().results
    assert settled.outcome is Outcome.APPLIED
    assert kinds(world)[-1] is EventType.APPLIED


def test_an_outcome_that_could_not_be_written_is_reconciled_by_the_live_process(world: World) -> None:
    """The trail fails after the PATCH: a later reconcile pass of the same process closes the intent and rotates."""
    store = world.stores["eu"]
    original = store.edit

    def edit_then_lose_the_trail(name, config):  # type: ignore[no-untyped-def]
        receipt = original(name, config)
        world.audit.down = True
        return receipt

    store.edit = edit_then_lose_the_trail  # type: ignore[method-assign]
    world.sweep()
    assert [r.event.event for r in world.audit.open_intents()] == [EventType.INTENT]
    store.edit = original  # type: ignore[method-assign]
    world.audit.down = False
    report = world.rotator.recover({KEY: secret()}, trigger=Trigger.RECONCILE)
    assert [r.outcome for r in report.results] == [Outcome.APPLIED]
    assert kinds(world) == [EventType.INTENT, EventType.INTERRUPTED, EventType.INTENT, EventType.APPLIED]
    assert world.audit.records[1].event.trigger is Trigger.RECONCILE
    assert world.audit.open_intents() == []


def test_every_open_intent_of_a_pair_is_closed(world: World) -> None:
    """Two intents left open on one pair (two crashes): both get `interrupted`, the pair is rotated once."""
    world.stores["eu"].fail_with["acme-registry"] = AuditUnavailable("the trail is gone")
    world.sweep()
    world.sweep()
    world.audit.records = [r for r in world.audit.records if r.event.event is EventType.INTENT]
    world.stores["eu"].fail_with.clear()
    first, second = world.audit.records
    world.rotator.recover({KEY: secret()})
    interrupted = [r.event.intent_seq for r in world.audit.records if r.event.event is EventType.INTERRUPTED]
    assert interrupted == [first.seq, second.seq]
    assert world.audit.open_intents() == []
    assert world.stores["eu"].calls.count(("PATCH", "acme-registry")) == 3


def test_an_intent_held_by_a_live_owner_is_looked_at_again_later(world: World) -> None:
    """A pass that finds the lease held leaves the intent open, and a later pass still sees it."""
    world.stores["eu"].fail_with["acme-registry"] = AuditUnavailable("trail gone")
    world.sweep()
    (intent,) = [r for r in world.audit.records if r.event.event is EventType.INTENT]
    world.audit.records = [intent]
    world.stores["eu"].fail_with.clear()
    grants = world.state.claim([KEY], owner="someone-alive", ttl=timedelta(minutes=5), due_by=None)
    assert world.rotator.recover({KEY: secret()}).results == []
    world.state.release(list(grants.values()))
    (result,) = world.rotator.recover({KEY: secret()}).results
    assert result.outcome is Outcome.APPLIED


def test_an_intent_closed_by_its_owner_after_the_read_is_left_alone(world: World) -> None:
    """Reconciliation read the intent as open, but its owner closed it and released the lease before our claim."""
    world.sweep()  # intent + applied, lease released
    intent = world.audit.records[0]
    real_open = world.audit.open_intents
    calls = []

    def stale_first_read(*, after: int = 0):  # type: ignore[no-untyped-def]
        calls.append(after)
        return [intent] if len(calls) == 1 else real_open(after=after)  # the first read predates the outcome

    world.audit.open_intents = stale_first_read  # type: ignore[method-assign]
    report = world.rotator.recover({KEY: secret()}, trigger=Trigger.RECONCILE)
    assert report.results == []
    assert kinds(world) == [EventType.INTENT, EventType.APPLIED]  # no false `interrupted`
    assert world.state.leases == {}  # the claim was given back
