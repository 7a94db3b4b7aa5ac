"""The StateStore port (service/ports.py), the same suite over FakeState and PostgresStateStore."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from service.model import Fingerprint, RotationKey, RotationState
from tests.contracts.conftest import DEATHS, SHORT_TTL, TTL, StateWorld

EU, US, AP = RotationKey("eu", "ghcr-pull"), RotationKey("us", "ghcr-pull"), RotationKey("ap", "quay-pull")
FINGERPRINT = Fingerprint(key_id="k1", digest="ab" * 32)
DUE = datetime(2030, 1, 1, 12, tzinfo=UTC)


def _state(key: RotationKey, **fields: object) -> RotationState:
    values: dict[str, object] = {"fingerprint": FINGERPRINT, "source_version": 4, "last_outcome": "applied"}
    return RotationState(key=key, **(values | fields))  # type: ignore[arg-type]


# --- load -----------------------------------------------------------------------------------


def test_load_of_an_empty_store_is_empty(state_world: StateWorld) -> None:
    """With nothing saved, loading every key or named keys returns an empty mapping."""
    store = state_world.replica("a").store
    assert store.load() == {}
    assert store.load([EU, US]) == {}


def test_load_returns_all_some_or_none_of_the_saved_states(state_world: StateWorld) -> None:
    """load() returns every saved state; load(keys) only those keys; keys without state are absent."""
    writer, reader = state_world.replica("a").store, state_world.replica("b").store
    states = [_state(EU), _state(US, source_version=7, consecutive_failures=2)]
    assert writer.save(states) == []
    assert reader.load() == {EU: states[0], US: states[1]}
    assert reader.load([US]) == {US: states[1]}
    assert reader.load([US, AP]) == {US: states[1]}
    assert reader.load([AP]) == {}
    assert reader.load([]) == {}


def test_save_replaces_a_keys_state_whole(state_world: StateWorld) -> None:
    """A second save of a key replaces its state, fields left at their defaults included."""
    store = state_world.replica("a").store
    store.save([_state(EU, last_error_code="forbidden", next_run_at=DUE)])
    replacement = RotationState(key=EU, last_outcome="applied")
    store.save([replacement])
    assert store.load([EU]) == {EU: replacement}


# --- claim ----------------------------------------------------------------------------------


def test_free_keys_are_granted_to_the_claimer_until_ttl(state_world: StateWorld) -> None:
    """Keys nobody holds are all granted, to the claiming owner, expiring about ttl from the store's clock."""
    replica = state_world.replica("a")
    before = state_world.now()
    grants = replica.claim([EU, US], ttl=TTL)
    after = state_world.now()
    assert set(grants) == {EU, US}
    assert all(grant.key == key and grant.owner == "a" for key, grant in grants.items())
    assert all(before + TTL <= grant.expires_at <= after + TTL for grant in grants.values())


def test_claiming_no_keys_grants_nothing(state_world: StateWorld) -> None:
    """An empty claim returns an empty mapping."""
    assert state_world.replica("a").claim([]) == {}


def test_tokens_grow_by_one_per_grant_of_a_key(state_world: StateWorld) -> None:
    """Each key's first grant has token 1 and every later grant of it one more, whatever other keys do."""
    replica = state_world.replica("a")
    first = replica.claim([EU, US])
    assert {grant.token for grant in first.values()} == {1}
    replica.store.release(list(first.values()))
    tokens = []
    for _ in range(3):
        grant = replica.claim([EU])[EU]
        tokens.append(grant.token)
        replica.store.release([grant])
    assert tokens == [2, 3, 4]
    assert replica.claim([US, AP]).keys() == {US, AP}


def test_a_held_lease_is_refused_to_others_and_to_its_holder(state_world: StateWorld) -> None:
    """While a live owner holds an unexpired lease, neither another replica nor the holder is granted it."""
    a, b = state_world.replica("a"), state_world.replica("b")
    assert set(a.claim([EU])) == {EU}
    assert b.claim([EU, US]).keys() == {US}
    assert a.claim([EU]) == {}


def test_an_expired_lease_is_granted_with_a_higher_token(state_world: StateWorld) -> None:
    """Once a lease's expiry passes on the store's clock, another replica is granted it, token + 1."""
    a, b = state_world.replica("a"), state_world.replica("b")
    first = a.claim([EU], ttl=SHORT_TTL)[EU]
    state_world.expire([first])
    second = b.claim([EU])[EU]
    assert (second.owner, second.token) == ("b", first.token + 1)


@pytest.mark.parametrize("death", DEATHS)
def test_a_dead_owners_lease_is_granted_at_once(state_world: StateWorld, death: str) -> None:
    """When its holder is gone, an unexpired lease is free at once (token + 1) and the dead holder's save is fenced."""
    a, b = state_world.replica("a"), state_world.replica("b")
    held = a.claim([EU], ttl=TTL)[EU]
    assert b.claim([EU]) == {}
    state_world.kill(a, death)
    taken = b.claim([EU])[EU]
    assert (taken.owner, taken.token) == ("b", held.token + 1)
    assert a.store.save([_state(EU)], release=[held]) == [EU]
    assert b.store.load() == {}


def test_due_by_refuses_keys_whose_next_run_is_after_it(state_world: StateWorld) -> None:
    """With due_by, a key whose next run is after due_by is refused; an equal, earlier or absent next run is granted."""
    replica = state_world.replica("a")
    later, equal, sooner = EU, US, AP
    never_run = RotationKey("sa", "new-one")
    replica.store.save(
        [
            _state(later, next_run_at=DUE + timedelta(hours=6)),
            _state(equal, next_run_at=DUE),
            _state(sooner, next_run_at=DUE - timedelta(hours=1)),
        ]
    )
    assert replica.claim([later, equal, sooner, never_run], due_by=DUE).keys() == {equal, sooner, never_run}


def test_without_due_by_the_next_run_does_not_matter(state_world: StateWorld) -> None:
    """A claim without due_by grants a free key even when its next run lies in the future."""
    replica = state_world.replica("a")
    replica.store.save([_state(EU, next_run_at=DUE + timedelta(days=365))])
    assert replica.claim([EU], due_by=None).keys() == {EU}


def test_claim_loaded_returns_each_grant_with_its_keys_state(state_world: StateWorld) -> None:
    """claim_loaded grants as claim does, and hands each granted key's saved state (None without one) with it."""
    a, b = state_world.replica("a"), state_world.replica("b")
    saved = _state(EU, consecutive_failures=3, next_run_at=DUE)
    a.store.save([saved])
    held = b.claim([AP])
    claimed = a.store.claim_loaded([EU, US, AP], owner="a", ttl=TTL, due_by=None)
    assert claimed.keys() == {EU, US}  # AP is held by b
    (eu_grant, eu_state), (us_grant, us_state) = claimed[EU], claimed[US]
    assert eu_state == saved
    assert us_state is None
    assert (eu_grant.key, eu_grant.owner, us_grant.key) == (EU, "a", US)
    assert a.store.save([_state(EU)], release=[eu_grant]) == []  # the grant handed back is the current one
    assert held[AP].owner == "b"


def test_claim_loaded_honours_due_by_like_claim(state_world: StateWorld) -> None:
    """A key whose saved next run is after due_by is neither granted nor loaded by claim_loaded."""
    replica = state_world.replica("a")
    replica.store.save([_state(EU, next_run_at=DUE + timedelta(hours=1)), _state(US, next_run_at=DUE)])
    claimed = replica.store.claim_loaded([EU, US], owner="a", ttl=TTL, due_by=DUE)
    assert claimed.keys() == {US}
    assert claimed[US][1] == _state(US, next_run_at=DUE)


# --- save and release -----------------------------------------------------------------------


def test_save_with_a_current_grant_writes_and_frees_the_lease(state_world: StateWorld) -> None:
    """A current grant's save stores the state and releases the lease: anyone gets it next, token + 1."""
    a, b = state_world.replica("a"), state_world.replica("b")
    grant = a.claim([EU])[EU]
    state = _state(EU)
    assert a.store.save([state], release=[grant]) == []
    assert b.store.load([EU]) == {EU: state}
    assert b.claim([EU])[EU].token == grant.token + 1


def test_a_stale_grants_save_is_fenced(state_world: StateWorld) -> None:
    """After a takeover, the old grant's state is not written and its key returned; other states are written."""
    a, b = state_world.replica("a"), state_world.replica("b")
    stale = a.claim([EU], ttl=SHORT_TTL)[EU]
    state_world.expire([stale])
    current = b.claim([EU])[EU]
    unfenced = _state(US)
    assert a.store.save([_state(EU, source_version=99), unfenced], release=[stale]) == [EU]
    assert b.store.load() == {US: unfenced}
    mine = _state(EU, source_version=5)
    assert b.store.save([mine], release=[current]) == []
    assert b.store.load([EU]) == {EU: mine}


def test_a_stale_release_without_a_state_returns_nothing(state_world: StateWorld) -> None:
    """save returns the keys of states it did not write: a stale grant released with no state names none."""
    a, b = state_world.replica("a"), state_world.replica("b")
    stale = a.claim([EU], ttl=SHORT_TTL)[EU]
    state_world.expire([stale])
    b.claim([EU])
    assert a.store.save([], release=[stale]) == []


def test_release_frees_a_current_lease(state_world: StateWorld) -> None:
    """Releasing a current grant lets another replica claim the key before its ttl ends."""
    a, b = state_world.replica("a"), state_world.replica("b")
    grant = a.claim([EU, US], ttl=TTL)
    a.store.release([grant[EU]])
    assert b.claim([EU, US]).keys() == {EU}


def test_a_stale_release_leaves_the_new_holder_alone(state_world: StateWorld) -> None:
    """Releasing or saving with an old grant does not free the lease its new holder has."""
    a, b, c = state_world.replica("a"), state_world.replica("b"), state_world.replica("c")
    stale = a.claim([EU], ttl=SHORT_TTL)[EU]
    state_world.expire([stale])
    assert b.claim([EU]).keys() == {EU}
    a.store.release([stale])
    a.store.save([], release=[stale])
    assert c.claim([EU]) == {}


def test_a_grant_stays_current_until_the_key_is_granted_again(state_world: StateWorld) -> None:
    """A released grant still saves while nobody claimed the key since; once it is granted again, it is fenced."""
    a, b = state_world.replica("a"), state_world.replica("b")
    grant = a.claim([EU])[EU]
    a.store.release([grant])
    late = _state(EU, source_version=6)
    assert a.store.save([late], release=[grant]) == []
    assert b.store.load([EU]) == {EU: late}
    b.claim([EU])
    assert a.store.save([_state(EU, source_version=7)], release=[grant]) == [EU]
    assert b.store.load([EU]) == {EU: late}


def test_the_last_of_several_states_of_a_key_is_kept(state_world: StateWorld) -> None:
    """When one save names a key twice, the later state is the one stored."""
    store = state_world.replica("a").store
    store.save([_state(EU, source_version=1), _state(EU, source_version=2)])
    assert store.load([EU])[EU].source_version == 2


def test_a_key_named_twice_in_a_claim_is_granted_once(state_world: StateWorld) -> None:
    """Duplicate keys in one claim yield one grant for that key."""
    grants = state_world.replica("a").claim([EU, EU, US])
    assert grants.keys() == {EU, US}
    assert grants[EU].token == 1


def test_racing_replicas_never_share_a_key(state_world: StateWorld) -> None:
    """Four replicas claiming the same keys at once from threads: every key is granted exactly once."""
    replicas = [state_world.replica(f"r{n}") for n in range(4)]
    rounds, per_round = 8, 12
    results: dict[int, list[set[RotationKey]]] = {n: [] for n in range(len(replicas))}
    barrier = threading.Barrier(len(replicas))

    def run(n: int) -> None:
        for round_ in range(rounds):
            keys = [RotationKey(f"t{round_}", f"secret-{i:03d}") for i in range(per_round)]
            barrier.wait(timeout=30)
            results[n].append(set(replicas[n].claim(keys[n % 2 :] + keys[: n % 2])))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for round_ in range(rounds):
        granted = [results[n][round_] for n in results]
        assert sum(len(keys) for keys in granted) == per_round, f"round {round_}: a key granted twice or never"
        assert set().union(*granted) == {RotationKey(f"t{round_}", f"secret-{i:03d}") for i in range(per_round)}
