"""``PostgresControls`` on a real PostgreSQL: pauses and pins, each change audited in its own transaction."""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine

from service.audit.controls import MANY_KEYS, PostgresControls
from service.audit.queries import AuditFilter, list_events
from service.audit.verify import verify_chain
from service.controls import Pause, Pin, Scope
from service.model import EventType, RotationKey
from tests.integration.audit.conftest import make_event

EU, US = RotationKey("eu", "ghcr-pull"), RotationKey("us", "ghcr-pull")


def _pause(scope: Scope, reason: str = "incident 7") -> Pause:
    return Pause(scope=scope, operator="alice@laptop", reason=reason)


def _events(engine: Engine) -> list[str]:
    return [row["event"] for row in reversed(list_events(engine, AuditFilter(), limit=100))]


def test_a_pause_covers_its_scope_and_is_audited_with_operator_and_reason(engine: Engine) -> None:
    """Pausing a secret holds it on every target, not other secrets; the audit row names who and why."""
    controls = PostgresControls(engine)
    event = make_event(event=EventType.PAUSED, target="*", operator="alice@laptop", reason="incident 7")
    assert controls.pause(_pause(Scope(secret="ghcr-pull")), event=event) is None
    holds = controls.holds([EU, US, RotationKey("eu", "acme")])
    assert holds.pause_of(EU) is not None
    assert holds.pause_of(US) is not None
    assert holds.pause_of(RotationKey("eu", "acme")) is None
    [row] = list_events(engine, AuditFilter(operators=["alice@laptop"]), limit=10)
    assert (row["event"], row["target"], row["reason"]) == ("paused", "*", "incident 7")
    assert verify_chain(engine).ok


def test_pausing_what_is_paused_changes_nothing_and_writes_no_row(engine: Engine) -> None:
    """The second pause of one scope returns the pause in force (its first reason) and appends nothing."""
    controls = PostgresControls(engine)
    controls.pause(_pause(Scope()), event=make_event(event=EventType.PAUSED))
    already = controls.pause(_pause(Scope(), reason="again"), event=make_event(event=EventType.PAUSED))
    assert already is not None
    assert already.reason == "incident 7"
    assert _events(engine) == ["paused"]


def test_resume_lifts_exactly_its_scope(engine: Engine) -> None:
    """Resuming a target leaves the kill switch in force; resuming what is not paused writes nothing."""
    controls = PostgresControls(engine)
    controls.pause(_pause(Scope()), event=make_event(event=EventType.PAUSED))
    controls.pause(_pause(Scope(target="eu")), event=make_event(event=EventType.PAUSED))
    lifted = controls.resume(Scope(target="eu"), event=make_event(event=EventType.RESUMED))
    assert lifted is not None
    assert lifted.scope == Scope(target="eu")
    assert controls.resume(Scope(target="eu"), event=make_event(event=EventType.RESUMED)) is None
    still = controls.holds([EU]).pause_of(EU)
    assert still is not None
    assert still.scope == Scope()
    assert _events(engine) == ["paused", "paused", "resumed"]


def test_pins_are_read_for_the_keys_asked_and_replaced_by_a_new_rollback(engine: Engine) -> None:
    """A second pin of a pair replaces the first; holds() returns only the pins of the keys it was given."""
    controls = PostgresControls(engine)
    controls.pin(Pin(key=EU, version=3, operator="bob", reason="bad push"), event=make_event(event=EventType.PINNED))
    controls.pin(Pin(key=EU, version=2, operator="bob", reason="older"), event=make_event(event=EventType.PINNED))
    controls.pin(Pin(key=US, version=5, operator="bob", reason="us"), event=make_event(event=EventType.PINNED))
    assert {key: pin.version for key, pin in controls.holds([EU]).pins.items()} == {EU: 2}
    assert set(controls.everything().pins) == {EU, US}
    removed = controls.unpin(EU, event=make_event(event=EventType.UNPINNED))
    assert removed is not None
    assert removed.version == 2
    assert controls.unpin(EU, event=make_event(event=EventType.UNPINNED)) is None
    assert _events(engine) == ["pinned", "pinned", "pinned", "unpinned"]


def test_a_reason_shaped_like_a_credential_is_masked_in_the_trail(engine: Engine) -> None:
    """An operator who pastes a token into --reason does not get it into the audit trail."""
    controls = PostgresControls(engine)
    token = "hvs." + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"  # a Vault token
    event = make_event(event=EventType.PAUSED, reason=f"leaked {token}")
    controls.pause(_pause(Scope(), reason=f"leaked {token}"), event=event)
    [row] = list_events(engine, AuditFilter(), limit=1)
    assert row["reason"].startswith("leaked ")
    assert token not in row["reason"]


def test_holds_for_five_thousand_pairs_is_one_quick_statement(engine: Engine) -> None:
    """A sweep of 5,000 pairs reads its pauses and pins in one round trip, well under 100 ms."""
    controls = PostgresControls(engine)
    keys = [RotationKey(f"t{i % 100}", f"s{i}") for i in range(5000)]
    for key in keys[:50]:
        controls.pin(Pin(key=key, version=1, operator="o", reason="r"), event=make_event(event=EventType.PINNED))
    controls.holds(keys)  # warm the pool
    started = time.perf_counter()
    holds = controls.holds(keys)
    elapsed = time.perf_counter() - started
    assert len(holds.pins) == 50
    assert elapsed < 0.1, f"{elapsed * 1000:.1f} ms"


def test_holds_of_many_keys_are_those_of_few_keys(engine: Engine) -> None:
    """Past MANY_KEYS every pin is read and matched in Python: the same pauses, and only the asked keys' pins."""
    controls = PostgresControls(engine)
    keys = [RotationKey(f"t{i % 10}", f"s{i}") for i in range(MANY_KEYS * 3)]
    outside = RotationKey("elsewhere", "s0")
    for key in (*keys[::7], outside):
        pin = Pin(key=key, version=len(key.secret), operator="o", reason="r")
        controls.pin(pin, event=make_event(event=EventType.PINNED))
    controls.pause(_pause(Scope(target="t3")), event=make_event(event=EventType.PAUSED, target="t3"))
    many = controls.holds(keys)
    few = [controls.holds(keys[i : i + MANY_KEYS]) for i in range(0, len(keys), MANY_KEYS)]
    assert len(keys) > MANY_KEYS
    assert {key: pin.version for key, pin in many.pins.items()} == {
        key: pin.version for holds in few for key, pin in holds.pins.items()
    }
    assert set(many.pins) == set(keys[::7])
    assert outside not in many.pins
    assert [pause.scope for pause in many.pauses] == [pause.scope for pause in few[0].pauses] == [Scope(target="t3")]
