"""The rotation use case over fakes of its ports: DESIGN.md's steps, one by one."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import timedelta

import pytest

from service.config import SecretConfig, SourceConfig, VerifyConfig
from service.engine import Rotator, RotatorOptions
from service.errors import AICoreError, AuditUnavailable, Forbidden, SourceNotFound
from service.model import (
    EventType,
    Fingerprint,
    LeaseGrant,
    Outcome,
    RotationKey,
    RotationState,
    SecretSpec,
    Trigger,
    VerificationOutcome,
)
from service.rotation import SweepRequest
from tests.fakes import NOW, FakeAudit, FakeClock, FakeSource, FakeState, FakeStore, FakeVerifier, RecordingListener

SENTINEL = "SENTINEL-registry-password-7f3a"


def secret(
    name: str = "acme-registry", *, targets: tuple[str, ...] = ("eu",), path: str = "registries/acme", **kwargs: object
) -> SecretSpec:
    return SecretConfig(
        name=name, targets=list(targets), registries=["registry.acme.example"], source=SourceConfig(path=path), **kwargs
    ).spec()  # type: ignore[arg-type]


class World:
    """A rotator wired to fakes, with handles on each fake."""

    def __init__(
        self,
        *,
        per_target: int = 4,
        targets: tuple[str, ...] = ("eu", "us"),
        owner: str = "me",
        confirm_every: timedelta | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.source = FakeSource(clock=self.clock)
        self.source.put("registries/acme", "robot", SENTINEL)
        self.stores = {t: FakeStore(target=t, existing={"acme-registry", "other-registry"}) for t in targets}
        self.audit = FakeAudit(clock=self.clock)
        self.state = FakeState(clock=self.clock)
        self.verifier = FakeVerifier()
        self.listener = RecordingListener()
        self.rotator = Rotator(
            source=self.source,
            stores=self.stores.__getitem__,
            audit=self.audit,
            state=self.state,
            verifier=self.verifier,
            listener=self.listener,
            clock=self.clock,
            options=RotatorOptions(
                audit_key=b"k" * 32,
                audit_key_id="k1",
                actor="rotator/test@host",
                owner=owner,
                lease_ttl=timedelta(minutes=5),
                max_concurrency=16,
                per_target_concurrency=per_target,
                renew_fraction=0.5,
                schedule_next=lambda s, now: now + timedelta(hours=6),
                confirm_every=None if confirm_every is None else (lambda s, now: confirm_every),
            ),
        )

    def sweep(self, *secrets: SecretConfig, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.rotator.sweep(SweepRequest(secrets=list(secrets) or [secret()], **kwargs))  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    w = World()
    yield w
    w.rotator.close()


def test_new_credential_is_applied_with_intent_first(world: World) -> None:
    """A first rotation writes the rendered value, after a committed intent, then records the outcome."""
    report = world.sweep()
    (result,) = report.results
    assert result.outcome is Outcome.APPLIED
    stored = json.loads(world.stores["eu"].values["acme-registry"])
    assert stored["auths"]["registry.acme.example"]["password"] == SENTINEL
    intent, applied = world.audit.records
    assert intent.event.event is EventType.INTENT
    assert applied.event.event is EventType.APPLIED
    assert applied.event.intent_seq == intent.seq
    assert intent.event.fingerprint == applied.event.fingerprint == result.fingerprint
    assert intent.event.source_version == 1
    assert intent.event.registry_username == "robot"
    assert applied.event.http_status == 202
    assert applied.event.aicore_request_id == result.request_id
    state = world.state.states[RotationKey("eu", "acme-registry")]
    assert state.fingerprint == result.fingerprint
    assert state.consecutive_failures == 0
    assert world.state.leases == {}
    assert report.head is not None
    assert report.head.seq == 2


def test_unchanged_credential_is_not_written_again(world: World) -> None:
    """The same fingerprint twice: the second sweep checks, writes nothing and adds no audit row."""
    world.sweep()
    world.clock.advance(timedelta(hours=7))
    (result,) = world.sweep().results
    assert result.outcome is Outcome.UNCHANGED
    assert world.stores["eu"].calls == [("PATCH", "acme-registry")]
    assert len(world.audit.records) == 2
    assert world.state.states[RotationKey("eu", "acme-registry")].last_checked_at == world.clock.now


def test_changed_credential_is_written_with_previous_fingerprint(world: World) -> None:
    """A new token in the source is written, and the audit row names the fingerprint it replaced."""
    (first,) = world.sweep().results
    world.source.put("registries/acme", "robot", "a-new-token-value")
    world.clock.advance(timedelta(hours=7))
    (second,) = world.sweep().results
    assert second.outcome is Outcome.APPLIED
    assert second.previous_fingerprint == first.fingerprint != second.fingerprint
    intent = world.audit.events(EventType.INTENT)[-1]
    assert intent.previous_fingerprint == first.fingerprint
    assert intent.source_version == 2


def test_a_state_without_a_readable_fingerprint_is_written_again(world: World) -> None:
    """A state whose fingerprint is unknown (how a stored text that does not parse loads) is written again."""
    (first,) = world.sweep().results
    key = RotationKey("eu", "acme-registry")
    world.state.states[key] = dataclasses.replace(world.state.states[key], fingerprint=None)
    world.clock.advance(timedelta(hours=7))
    (again,) = world.sweep().results
    assert again.outcome is Outcome.APPLIED
    assert world.stores["eu"].calls == [("PATCH", "acme-registry"), ("PATCH", "acme-registry")]
    assert (again.fingerprint, again.previous_fingerprint) == (first.fingerprint, None)
    intent = world.audit.events(EventType.INTENT)[-1]
    assert isinstance(intent.fingerprint, Fingerprint)
    assert (intent.fingerprint, intent.previous_fingerprint) == (first.fingerprint, None)
    assert world.state.states[key].fingerprint == first.fingerprint


def test_force_rewrites_and_is_audited_as_forced(world: World) -> None:
    """--force writes an unchanged credential, with a `forced` event before its intent."""
    world.sweep()
    (result,) = world.sweep(force=True, trigger=Trigger.MANUAL).results
    assert result.outcome is Outcome.APPLIED
    kinds = [r.event.event for r in world.audit.records]
    assert kinds == [EventType.INTENT, EventType.APPLIED, EventType.FORCED, EventType.INTENT, EventType.APPLIED]
    assert world.audit.records[2].event.trigger is Trigger.MANUAL


def test_no_patch_when_the_audit_trail_is_down(world: World) -> None:
    """If the intent cannot be committed, nothing is written to AI Core and the rotation fails loudly."""
    world.audit.down = True
    (result,) = world.sweep().results
    assert result.outcome is Outcome.FAILED
    assert result.error_code == "audit_unavailable"
    assert world.stores["eu"].calls == []
    assert len(world.listener.audit_failures) == 1


def test_one_read_per_source_per_sweep(world: World) -> None:
    """Two secrets on two targets sharing one source cause a single Vault read."""
    both = ("eu", "us")
    report = world.sweep(secret(targets=both), secret("other-registry", targets=both))
    assert [r.outcome for r in report.results] == [Outcome.APPLIED] * 4
    assert world.source.reads == ["registries/acme"]


def test_one_broken_secret_does_not_stop_the_others(world: World) -> None:
    """A source error and an AI Core error fail their own rotations only."""
    world.source.entries["registries/missing"] = SourceNotFound("no secret at secret/registries/missing")
    world.stores["us"].fail_with["acme-registry"] = Forbidden("this identity may not edit", status=403)
    report = world.sweep(
        secret("broken-registry", path="registries/missing"), secret(targets=("eu", "us")), secret("other-registry")
    )
    outcomes = {(r.key.target, r.key.secret): r.outcome for r in report.results}
    assert outcomes == {
        ("eu", "broken-registry"): Outcome.FAILED,
        ("eu", "acme-registry"): Outcome.APPLIED,
        ("us", "acme-registry"): Outcome.FAILED,
        ("eu", "other-registry"): Outcome.APPLIED,
    }
    failed = world.audit.events(EventType.FAILED)
    assert [(e.target, e.error_code, e.http_status) for e in failed] == [("us", "aicore_forbidden", 403)]
    state = world.state.states[RotationKey("eu", "broken-registry")]
    assert state.consecutive_failures == 1
    assert state.last_error_code == "source_not_found"
    assert world.state.leases == {}


def test_missing_secret_fails_unless_create_missing(world: World) -> None:
    """A 404 is an error, unless the secret is configured with create_missing: then it is created."""
    (plain,) = world.sweep(secret("new-registry")).results
    assert plain.outcome is Outcome.FAILED
    assert plain.error_code == "aicore_secret_not_found"
    (created,) = world.sweep(secret("new-registry", create_missing=True)).results
    assert created.outcome is Outcome.APPLIED
    assert world.stores["eu"].calls[-2:] == [("PATCH", "new-registry"), ("POST", "new-registry")]


def test_refused_credential_is_rejected_and_never_written(world: World) -> None:
    """A credential the registry refuses gets a `rejected` event and AI Core keeps its old value."""
    world.verifier.outcomes["registry.acme.example"] = VerificationOutcome.AUTH_FAILED
    (result,) = world.sweep(secret(verify=VerifyConfig(mode="registry"))).results
    assert result.outcome is Outcome.REJECTED
    assert result.error_code == "auth_failed"
    assert world.stores["eu"].calls == []
    (event,) = world.audit.records
    assert event.event.event is EventType.REJECTED
    assert event.event.verification == "auth_failed"


def test_unreachable_registry_can_be_allowed(world: World) -> None:
    """on_unreachable = proceed lets a write through when the registry cannot be reached."""
    world.verifier.outcomes["registry.acme.example"] = VerificationOutcome.REGISTRY_UNREACHABLE
    closed = secret(verify=VerifyConfig(mode="registry"))
    assert world.sweep(closed).results[0].outcome is Outcome.REJECTED
    open_ = secret(verify=VerifyConfig(mode="registry", on_unreachable="proceed"))
    assert world.sweep(open_).results[0].outcome is Outcome.APPLIED


def test_verification_once_per_secret_per_sweep(world: World) -> None:
    """A secret on two targets is verified once, not once per target."""
    world.sweep(secret(targets=("eu", "us"), verify=VerifyConfig(mode="registry")))
    assert world.verifier.calls == ["registry.acme.example"]


def test_lease_held_elsewhere_skips_without_reading(world: World) -> None:
    """When another live replica holds the lease, this one skips and does not even read Vault."""
    key = RotationKey("eu", "acme-registry")
    world.state.leases[key] = LeaseGrant(key, "other-replica", 99, NOW + timedelta(minutes=5))
    (result,) = world.sweep().results
    assert result.outcome is Outcome.SKIPPED
    assert world.source.reads == []


def test_due_time_already_done_by_another_replica(world: World) -> None:
    """A scheduled sweep skips a key whose state says this due time is already done."""
    key = RotationKey("eu", "acme-registry")
    world.state.states[key] = RotationState(key=key, next_run_at=NOW + timedelta(hours=6))
    (result,) = world.sweep(due_by=NOW).results
    assert result.outcome is Outcome.SKIPPED
    (manual,) = world.sweep(trigger=Trigger.MANUAL).results
    assert manual.outcome is Outcome.APPLIED


def test_dry_run_writes_nothing(world: World) -> None:
    """--dry-run reads, renders, fingerprints and reports; no lease, no audit row, no PATCH."""
    (result,) = world.sweep(dry_run=True).results
    assert result.outcome is Outcome.DRY_RUN
    assert result.would_write is True
    assert result.fingerprint is not None
    assert str(result.fingerprint).startswith("hmac-sha256:k1:")
    assert world.audit.records == []
    assert world.stores["eu"].calls == []
    assert world.state.states == {}
    world.sweep()
    (again,) = world.sweep(dry_run=True).results
    assert again.would_write is False


def test_interrupted_intent_is_closed_and_rotated_again(world: World) -> None:
    """An intent without outcome gets `interrupted` at start-up, and the secret is written again at once."""
    world.audit.down = False
    world.stores["eu"].fail_with["acme-registry"] = AICoreError("simulated crash point")
    world.sweep()  # leaves intent + failed
    crashed = world.audit.records[0]
    world.audit.records = [crashed]  # as if the process died right after the intent
    world.stores["eu"].fail_with.clear()
    report = world.rotator.recover({RotationKey("eu", "acme-registry"): secret()})
    kinds = [r.event.event for r in world.audit.records]
    assert kinds == [EventType.INTENT, EventType.INTERRUPTED, EventType.INTENT, EventType.APPLIED]
    assert world.audit.records[1].event.intent_seq == crashed.seq
    assert report.results[0].outcome is Outcome.APPLIED
    assert report.results[0].trigger is Trigger.STARTUP
    assert world.audit.open_intents() == []


def test_intent_of_a_live_replica_is_left_alone(world: World) -> None:
    """An open intent whose lease a live replica holds is that replica's work in progress."""
    world.sweep()
    intent = world.audit.records[0]
    world.audit.records = [intent]
    key = RotationKey("eu", "acme-registry")
    world.state.leases[key] = LeaseGrant(key, "busy-replica", 99, NOW + timedelta(minutes=5))
    report = world.rotator.recover({RotationKey("eu", "acme-registry"): secret()})
    assert report.results == []
    assert len(world.audit.records) == 1


def test_dynamic_credential_is_rotated_before_its_lease_ends(world: World) -> None:
    """With a 1h lease and fraction 0.5, the next run comes after 30 minutes, not 6 hours."""
    world.source.lease_duration = 3600
    (result,) = world.sweep().results
    assert result.next_run_at == NOW + timedelta(minutes=30)
    assert world.state.states[RotationKey("eu", "acme-registry")].next_run_at == NOW + timedelta(minutes=30)


def test_per_target_concurrency_is_bounded() -> None:
    """No more than per_target_concurrency PATCHes run at once on one target."""
    world = World(per_target=2)
    active, peak, lock = 0, 0, threading.Lock()
    original = world.stores["eu"].edit

    def slow_edit(name, config):  # type: ignore[no-untyped-def]
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return original(name, config)

    world.stores["eu"].edit = slow_edit  # type: ignore[method-assign]
    names = [f"registry-{i:02d}" for i in range(8)]
    world.stores["eu"].existing.update(names)
    world.sweep(*(secret(n) for n in names))
    world.rotator.close()
    assert peak == 2


def test_secret_value_never_leaves_the_use_case(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The password is in the value written to AI Core and nowhere else: results, audit rows, state, logs."""
    world.stores["us"].fail_with["acme-registry"] = Forbidden("no", status=403)
    report = world.sweep(secret(targets=("eu", "us")), secret("broken-registry", path="nope"))
    world.sweep(secret(targets=("eu",)), force=True, trigger=Trigger.MANUAL)
    haystack = [
        repr(report),
        repr(world.audit.records),
        repr(world.state.states),
        caplog.text,
        repr(world.listener.results),
    ]
    assert all(SENTINEL not in text for text in haystack)
    assert SENTINEL in world.stores["eu"].values["acme-registry"]


def test_recheck_verifies_the_applied_credential(world: World) -> None:
    """A recheck sweep verifies an unchanged credential again and records a refusal in the state."""
    checked = secret(verify=VerifyConfig(mode="registry"))
    world.sweep(checked)
    world.verifier.outcomes["registry.acme.example"] = VerificationOutcome.AUTH_FAILED
    (result,) = world.sweep(checked, recheck=True).results
    assert result.outcome is Outcome.UNCHANGED
    assert result.verification == "auth_failed"
    state = world.state.states[RotationKey("eu", "acme-registry")]
    assert state.verification == "auth_failed"
    assert state.verified_at == world.clock.now
    assert world.stores["eu"].calls == [("PATCH", "acme-registry")]


def test_same_path_with_other_fields_is_another_source(world: World) -> None:
    """Two secrets reading one path through different field mappings each get their own fields."""
    world.sweep(secret(), secret("other-registry"))
    assert world.source.reads == ["registries/acme"]
    token_mapped = SecretConfig(
        name="token-registry",
        targets=["eu"],
        registries=["registry.acme.example"],
        source=SourceConfig(path="registries/acme", password_field="token"),
    ).spec()
    world.stores["eu"].existing.add("token-registry")
    world.sweep(secret(), token_mapped)
    assert world.source.reads == ["registries/acme"] * 3


def test_failed_rotation_is_retried_soon_not_next_period(world: World) -> None:
    """A failure brings the next run forward to a backoff (here at most 30 s), not the 6 h schedule."""
    world.source.entries["registries/acme"] = SourceNotFound("no secret at secret/registries/acme")
    (result,) = world.sweep().results
    assert result.outcome is Outcome.FAILED
    assert NOW + timedelta(seconds=15) <= result.next_run_at <= NOW + timedelta(seconds=30)
    world.clock.advance(timedelta(minutes=1))
    (again,) = world.sweep().results
    assert world.clock.now + timedelta(seconds=30) <= again.next_run_at <= world.clock.now + timedelta(seconds=60)


def test_failed_row_keeps_ai_cores_own_code_beside_ours(world: World) -> None:
    """A failed write records our class code in error_code and AI Core's body code in aicore_error_code."""
    world.stores["eu"].fail_with["acme-registry"] = Forbidden(
        "this identity may not edit", status=403, aicore_code="ForbiddenAccess"
    )
    world.sweep(secret())
    (failed,) = world.audit.events(EventType.FAILED)
    assert (failed.error_code, failed.aicore_error_code, failed.http_status) == (
        "aicore_forbidden",
        "ForbiddenAccess",
        403,
    )


def test_a_sweep_claims_its_pairs_a_part_at_a_time(world: World) -> None:
    """40 pairs on a pool of 16 threads: two claims of at most 32 pairs, each handing back grants with states."""
    calls: list[int] = []
    original = world.state.claim_loaded

    def counted(keys, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(keys))
        return original(keys, **kwargs)

    world.state.claim_loaded = counted  # type: ignore[method-assign]
    names = [f"registry-{i:02d}" for i in range(20)]
    for store in world.stores.values():
        store.existing.update(names)
    report = world.sweep(*[secret(name, targets=("eu", "us")) for name in names])
    assert [r.outcome for r in report.results] == [Outcome.APPLIED] * 40
    assert calls == [32, 8]
    assert world.state.leases == {}  # every lease released


def test_a_failed_claim_fails_its_pairs_and_writes_nothing(world: World) -> None:
    """The database refusing a part's claim: each of its pairs fails with the error, nothing is read or written."""

    def refused(keys, **kwargs):  # type: ignore[no-untyped-def]
        raise AuditUnavailable("the database at db:5432 is unreachable")

    world.state.claim_loaded = refused  # type: ignore[method-assign]
    report = world.sweep(secret(targets=("eu", "us")))
    assert [(r.outcome, r.error_code) for r in report.results] == [(Outcome.FAILED, "audit_unavailable")] * 2
    assert world.source.reads == []
    assert all(store.calls == [] for store in world.stores.values())
    assert [n.event for n in world.listener.notices] == ["rotation.error", "rotation.error"]


def test_a_pair_named_twice_is_rotated_once(world: World) -> None:
    """The same entry listed twice in a request: one rotation writes, the other is skipped, no lease is left."""
    entry = secret()
    report = world.sweep(entry, entry)
    assert sorted(r.outcome for r in report.results) == sorted([Outcome.APPLIED, Outcome.SKIPPED])
    assert world.stores["eu"].calls == [("PATCH", "acme-registry")]
    assert world.state.leases == {}


def test_a_sweep_that_appended_nothing_reads_no_chain_head(world: World) -> None:
    """Unchanged only: the report has no head (no query); a sweep that wrote reports the head it moved."""
    first = world.sweep()
    world.clock.advance(timedelta(hours=7))
    second = world.sweep()
    assert first.head is not None
    assert first.head.seq == 2
    assert second.results[0].outcome is Outcome.UNCHANGED
    assert second.head is None
