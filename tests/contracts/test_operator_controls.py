"""The ``OperatorControls`` contract (what a sweep reads), over ``FakeControls`` and ``PostgresControls``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from service.audit import migrate
from service.audit.controls import PostgresControls
from service.audit.db import make_engine
from service.config import DatabaseConfig
from service.controls import Pause, Pin, Scope
from service.model import AuditEvent, EventType, RotationKey, Trigger
from service.ports import OperatorControls
from tests.contracts.conftest import IMPLEMENTATIONS
from tests.fakes import FakeControls

EU, US, OTHER = RotationKey("eu", "acme"), RotationKey("us", "acme"), RotationKey("eu", "other")


@dataclass(frozen=True)
class ControlsWorld:
    """An implementation of the port, and how to arrange a pause or a pin in it."""

    controls: OperatorControls
    pause: Callable[[Scope], None]
    pin: Callable[[RotationKey, int], None]


def _event(kind: EventType, key: RotationKey) -> AuditEvent:
    return AuditEvent(
        event=kind,
        run_id="r",
        target=key.target,
        api_host="",
        secret=key.secret,
        registries=(),
        trigger=Trigger.MANUAL,
        actor="rotator/test@host",
        operator="alice",
        reason="contract",
    )


@pytest.fixture(params=IMPLEMENTATIONS)
def world(request: pytest.FixtureRequest) -> Iterator[ControlsWorld]:
    """The fake, or the real store on a fresh migrated database."""
    if request.param == "fake":
        fake = FakeControls()
        yield ControlsWorld(
            controls=fake,
            pause=lambda scope: fake.pauses.append(Pause(scope=scope, operator="alice", reason="contract")),
            pin=lambda key, version: fake.pins.__setitem__(
                key, Pin(key=key, version=version, operator="alice", reason="contract")
            ),
        )
        return
    engine = make_engine(DatabaseConfig(url=request.getfixturevalue("database_url"), pool_size=2), password=None)
    migrate.upgrade(engine)
    real = PostgresControls(engine)
    yield ControlsWorld(
        controls=real,
        pause=lambda scope: real.pause(
            Pause(scope=scope, operator="alice", reason="contract"),
            event=_event(EventType.PAUSED, RotationKey(scope.target, scope.secret)),
        ),
        pin=lambda key, version: real.pin(
            Pin(key=key, version=version, operator="alice", reason="contract"), event=_event(EventType.PINNED, key)
        ),
    )
    engine.dispose()


def test_nothing_holds_a_fresh_world(world: ControlsWorld) -> None:
    """No pause, no pin: every pair is free."""
    holds = world.controls.holds([EU, US])
    assert holds.pause_of(EU) is None
    assert dict(holds.pins) == {}


def test_every_pause_in_force_is_returned_and_covers_by_scope(world: ControlsWorld) -> None:
    """A secret's pause covers it on every target and nothing else; the kill switch covers everything."""
    world.pause(Scope(secret="acme"))
    holds = world.controls.holds([EU, OTHER])
    assert holds.pause_of(US) is not None, "pauses are not limited to the keys asked about"
    assert holds.pause_of(OTHER) is None
    world.pause(Scope())
    widest = world.controls.holds([EU]).pause_of(EU)
    assert widest is not None
    assert widest.scope == Scope(), "the widest pause is the one reported"


def test_pins_are_returned_only_for_the_keys_asked_about(world: ControlsWorld) -> None:
    """Pins of other pairs stay out of a sweep's holds; a pair's pin carries its version and who set it."""
    world.pin(EU, 3)
    world.pin(US, 5)
    holds = world.controls.holds([EU, OTHER])
    assert set(holds.pins) == {EU}
    pin = holds.pin_of(EU)
    assert pin is not None
    assert (pin.version, pin.operator, pin.reason) == (3, "alice", "contract")
