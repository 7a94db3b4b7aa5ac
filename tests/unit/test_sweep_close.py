"""The end of a rotation: its outcome and its state are written in one batch, and each can fail alone."""

from __future__ import annotations

from service.errors import AuditUnavailable
from service.model import EventType, Outcome, RotationKey
from tests.unit.test_sweep import World, secret


def test_outcome_not_written_leaves_the_intent_open_but_saves_the_state() -> None:
    """The trail down after the PATCH: the intent stays open for recovery; state and lease are still settled."""
    world = World()
    store = world.stores["eu"]
    original = store.edit

    def edit_then_lose_the_trail(name, config):  # type: ignore[no-untyped-def]
        receipt = original(name, config)
        world.audit.down = True
        return receipt

    store.edit = edit_then_lose_the_trail  # type: ignore[method-assign]
    report = world.sweep()
    world.rotator.close()
    assert [r.outcome for r in report.results] == [Outcome.APPLIED]
    assert [type(e) for e in world.listener.audit_failures] == [AuditUnavailable]
    assert [r.event.event for r in world.audit.open_intents()] == [EventType.INTENT]
    key = RotationKey("eu", "acme-registry")
    assert world.state.states[key].fingerprint == report.results[0].fingerprint
    assert key not in world.state.leases


def test_state_not_saved_still_records_the_outcome() -> None:
    """The state store failing at the end does not lose the audit outcome of a PATCH that happened."""
    world = World()

    def save_fails(states, *, release=()):  # type: ignore[no-untyped-def]
        raise AuditUnavailable("state database unreachable")

    world.state.save = save_fails  # type: ignore[method-assign]
    report = world.sweep()
    world.rotator.close()
    assert [r.outcome for r in report.results] == [Outcome.APPLIED]
    assert world.audit.events(EventType.APPLIED)[0].secret == "acme-registry"
    assert world.audit.open_intents() == []


def test_outcome_is_appended_before_the_state_is_saved() -> None:
    """Every rotation's outcome row is committed before its state row says it was applied."""
    world = World()
    calls: list[tuple[str, str]] = []
    append, save = world.audit.append, world.state.save

    def recording_append(events):  # type: ignore[no-untyped-def]
        calls.extend(("append", f"{e.target}/{e.secret}") for e in events if e.event is EventType.APPLIED)
        return append(events)

    def recording_save(states, *, release=()):  # type: ignore[no-untyped-def]
        calls.extend(("save", str(s.key)) for s in states)
        return save(states, release=release)

    world.audit.append = recording_append  # type: ignore[method-assign]
    world.state.save = recording_save  # type: ignore[method-assign]
    names = [f"registry-{i:02d}" for i in range(6)]
    for store in world.stores.values():
        store.existing.update(names)
    world.sweep(*(secret(name, targets=("eu", "us")) for name in names))
    world.rotator.close()
    saved = [where for kind, where in calls if kind == "save"]
    assert len(saved) == 12
    for where in saved:
        assert calls.index(("append", where)) < calls.index(("save", where))
