"""Stale flags kept from changed states: the moment a pair turns stale, and the flags that changed since last asked."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.health import StaleWatch, stale, stale_from
from service.model import RotationKey, RotationState
from tests.fakes import NOW

EU, US = RotationKey("eu", "reg-000"), RotationKey("us", "reg-000")
HOUR = timedelta(hours=1)
offsets = st.timedeltas(min_value=-timedelta(days=3), max_value=timedelta(days=3))


def success(key: RotationKey, *, ago: timedelta, expires_in: timedelta | None = None) -> RotationState:
    expires = None if expires_in is None else NOW + expires_in
    return RotationState(key=key, last_success_at=NOW - ago, credential_expires_at=expires)


@given(
    success_at=st.one_of(st.none(), offsets),
    expires_at=st.one_of(st.none(), offsets),
    allowance=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)),
    now=offsets,
)
def test_stale_from_is_the_first_moment_stale_holds(
    success_at: timedelta | None, expires_at: timedelta | None, allowance: timedelta, now: timedelta
) -> None:
    """At any moment, ``stale`` says True exactly when that moment is at or past ``stale_from`` (to the microsecond)."""
    state = RotationState(
        key=EU,
        last_success_at=None if success_at is None else NOW + success_at,
        credential_expires_at=None if expires_at is None else NOW + expires_at,
    )
    moment = NOW + now
    assert stale(state, now=moment, allowance=allowance) is (moment >= stale_from(state, allowance=allowance))
    edge = stale_from(state, allowance=allowance)
    if state.last_success_at is not None:
        assert stale(state, now=edge, allowance=allowance)
        assert not stale(state, now=edge - timedelta(microseconds=1), allowance=allowance)


def test_a_pair_without_state_or_success_is_stale_at_once() -> None:
    """Never rotated, or never succeeded: stale from the start."""
    watch = StaleWatch()
    watch.reset({EU: HOUR, US: HOUR}, {US: RotationState(key=US, consecutive_failures=3)})
    assert sorted(watch.changed(now=NOW)) == [(EU, True), (US, True)]


def test_the_first_answer_has_every_pair_then_only_changes() -> None:
    """Every configured pair is said once; asked again with nothing changed, nothing is said."""
    watch = StaleWatch()
    watch.reset({EU: HOUR, US: HOUR}, {EU: success(EU, ago=timedelta(minutes=10))})
    assert sorted(watch.changed(now=NOW)) == [(EU, False), (US, True)]
    assert watch.changed(now=NOW + timedelta(minutes=1)) == []


def test_a_pair_turns_stale_as_time_passes_without_a_new_state() -> None:
    """Its last success ages past the allowance, or its credential expires: stale with no read of its state."""
    watch = StaleWatch()
    aging, expiring = success(EU, ago=timedelta(minutes=40)), success(US, ago=timedelta(0), expires_in=HOUR / 4)
    watch.reset({EU: HOUR, US: HOUR}, {EU: aging, US: expiring})
    assert watch.changed(now=NOW) == [(EU, False), (US, False)]
    assert watch.changed(now=NOW + timedelta(minutes=10)) == []
    assert watch.changed(now=NOW + timedelta(minutes=15)) == [(US, True)]
    assert watch.changed(now=NOW + timedelta(minutes=20)) == []  # exactly the allowance old: not yet
    assert watch.changed(now=NOW + timedelta(minutes=20, microseconds=1)) == [(EU, True)]


def test_a_changed_state_makes_a_stale_pair_fresh_and_unconfigured_ones_are_ignored() -> None:
    """``update`` with a new success clears the flag; a state of a pair not configured adds no flag."""
    watch = StaleWatch()
    watch.reset({EU: HOUR}, {})
    assert watch.changed(now=NOW) == [(EU, True)]
    gone = RotationKey("ap", "reg-000")
    watch.update({EU: success(EU, ago=timedelta(0)), gone: success(gone, ago=timedelta(0))})
    assert watch.changed(now=NOW) == [(EU, False)]


def test_a_state_read_from_the_database_lends_its_key_but_it_is_never_kept() -> None:
    """The pairs said are the configured key objects, not the equal ones each read of the states builds."""
    configured = RotationKey("eu", "".join(["reg-", "000"]))  # equal to EU, another object
    watch = StaleWatch()
    watch.reset({configured: HOUR}, {})
    read = RotationKey("eu", "".join(["reg-", "000"]))
    assert read == configured
    assert read is not configured
    watch.update({read: success(read, ago=timedelta(0))})
    (said,) = watch.changed(now=NOW)
    assert said == (configured, False)
    assert said[0] is configured
    watch.update({read: success(read, ago=HOUR)})
    assert watch.changed(now=NOW + timedelta(microseconds=1))[0][0] is configured


def test_a_reset_forgets_pairs_no_longer_configured_and_applies_new_allowances() -> None:
    """After a reload: a removed pair is not said again; a pair's new, shorter allowance takes effect."""
    watch = StaleWatch()
    states = {EU: success(EU, ago=timedelta(minutes=30)), US: success(US, ago=timedelta(minutes=30))}
    watch.reset({EU: HOUR, US: HOUR}, states)
    assert watch.changed(now=NOW) == [(EU, False), (US, False)]
    watch.reset({EU: HOUR / 4}, states)
    assert watch.changed(now=NOW) == [(EU, True)]
    watch.reset({EU: HOUR / 4, US: HOUR}, states)
    assert watch.changed(now=NOW) == [(US, False)]


recent = st.timedeltas(min_value=-timedelta(hours=3), max_value=timedelta(0))
KEYS = [RotationKey(target, f"reg-{n:03}") for target in ("eu", "us") for n in range(3)]
steps = st.lists(
    st.tuples(
        st.sampled_from(["pass", "update", "reset"]),
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=2)),  # time moves on by this
        st.dictionaries(st.sampled_from(KEYS), st.one_of(st.none(), recent), max_size=3),  # new successes, or none
        st.lists(st.sampled_from(KEYS), unique=True, min_size=1),  # configured pairs at a reset
    ),
    max_size=25,
)


@given(steps=steps, allowance=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(hours=3)))
def test_the_flags_said_are_those_of_judging_every_pair_on_every_pass(
    steps: list[tuple[str, timedelta, dict[RotationKey, timedelta | None], list[RotationKey]]],
    allowance: timedelta,
) -> None:
    """Whatever the order of reads, reloads and passes: each pass says exactly the flags a full judgement changes."""
    watch = StaleWatch()
    states: dict[RotationKey, RotationState] = {}
    configured = list(KEYS)
    watch.reset(dict.fromkeys(configured, allowance), states)
    said: dict[RotationKey, bool] = {}
    now = NOW
    for kind, later, successes, pairs in steps:
        now += later
        if kind == "update":  # states written since the last read (a pair may not be configured any more)
            fresh = {
                key: RotationState(key=key, last_success_at=None if at is None else now + at)
                for key, at in successes.items()
            }
            states |= fresh
            watch.update(fresh)
        elif kind == "reset":  # a full read, after a reload perhaps with other pairs
            configured = pairs
            watch.reset(dict.fromkeys(configured, allowance), states)
            said = {key: flag for key, flag in said.items() if key in configured}
        expected = []
        for key in configured:  # what judging every pair says: each flag that differs from the last said
            flag = stale(states.get(key), now=now, allowance=allowance)
            if said.get(key) is not flag:
                said[key] = flag
                expected.append((key, flag))
        assert watch.changed(now=now) == expected
