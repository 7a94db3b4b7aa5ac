"""The fault suite's invariant checks find what they exist to find (pure functions, no servers)."""

from __future__ import annotations

from tests.faults import invariants
from tests.faults.emulator import Logged
from tests.faults.invariants import Row

T0 = 1_700_000_000.0


def row(seq: int, at: float, event: str, intent_seq: int | None = None, *, target: str = "t", secret: str = "s") -> Row:
    return Row(seq=seq, at=T0 + at, event=event, target=target, secret=secret, intent_seq=intent_seq)


def patch(number: int, at: float, status: int = 202, *, tenant: str = "t", name: str = "s", body: str = "0") -> Logged:
    return Logged(
        number,
        T0 + at,
        T0 + at + 0.01,
        "PATCH",
        f"/api/{tenant}/v2/x/{name}",
        tenant,
        "secret",
        name,
        status,
        body * 64,
        f"r{number}",
    )


def test_a_patch_before_any_intent_is_found() -> None:
    """A PATCH that arrived before the pair's first intent breaks intent-first."""
    rows = [row(1, 2.0, "intent"), row(2, 3.0, "applied", 1)]
    assert invariants.no_write_without_intent(rows, [patch(1, 1.0)], {}) != []
    assert invariants.no_write_without_intent(rows, [patch(1, 2.5)], {}) == []


def test_a_patch_after_its_intent_was_closed_is_found() -> None:
    """A PATCH arriving after the latest intent's outcome had no open intent."""
    rows = [row(1, 1.0, "intent"), row(2, 2.0, "failed", 1)]
    assert invariants.no_write_without_intent(rows, [patch(1, 2.5)], {}) != []


def test_a_patch_held_by_a_stopped_emulator_counts_from_the_pause() -> None:
    """A PATCH handled just after SIGCONT may have been sent during the pause, while its intent was open."""
    rows = [row(1, 1.0, "intent"), row(2, 5.0, "applied", 1)]
    assert invariants.no_write_without_intent(rows, [patch(1, 5.2)], {}) != []
    assert invariants.no_write_without_intent(rows, [patch(1, 5.2)], {}, paused=[(T0 + 1.5, T0 + 5.1)]) == []
    assert invariants.no_write_without_intent(rows, [patch(1, 9.0)], {}, paused=[(T0 + 1.5, T0 + 5.1)]) != []


def test_open_and_slow_intents_are_found() -> None:
    """An intent without outcome, or closed after the bound, breaks resolved; the longest time is reported."""
    problems, longest = invariants.intents_resolved([row(1, 0.0, "intent"), row(2, 9.0, "interrupted", 1)], within=6)
    assert problems
    assert longest == 9.0
    problems, _ = invariants.intents_resolved([row(1, 0.0, "intent")], within=6)
    assert problems == ["intent 1 (t/s) is still open"]


def test_overlapping_intents_and_double_writes_are_found() -> None:
    """Two open intents of one pair, or two different values accepted for one intent, break written-once."""
    overlapping = [row(1, 0.0, "intent"), row(2, 1.0, "intent"), row(3, 2.0, "applied", 1), row(4, 3.0, "applied", 2)]
    assert invariants.written_once(overlapping, [], {}) != []
    dead_owner = [
        row(1, 0.0, "intent"),
        row(2, 1.0, "intent"),
        row(3, 2.0, "interrupted", 1),
        row(4, 3.0, "applied", 2),
    ]
    assert invariants.written_once(dead_owner, [], {}) == []
    single = [row(1, 0.0, "intent"), row(2, 2.0, "applied", 1)]
    assert invariants.written_once(single, [patch(1, 0.5)], {}) == []
    assert invariants.written_once(single, [patch(1, 0.5), patch(2, 1.0, body="1")], {}) != []
    assert invariants.written_once(single, [patch(1, 0.5), patch(2, 1.0)], {}) == []  # a retry of the same PATCH
    assert invariants.written_once(single, [patch(1, 0.5, status=503), patch(2, 1.0, body="1")], {}) == []


def test_a_leaked_credential_is_found_in_plain_and_in_base64() -> None:
    """The password and the base64 user:password both count as leaks; the report names the place only."""
    forms = invariants.leak_forms([("robot", "SENTINEL-x1")])
    assert invariants.no_sentinel({"log": "... SENTINEL-x1 ..."}, forms) == ["a credential appears in log"]
    assert invariants.no_sentinel({"log": "cm9ib3Q6U0VOVElORUwteDE="}, forms) != []
    assert invariants.no_sentinel({"log": "nothing here"}, forms) == []
