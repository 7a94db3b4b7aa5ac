"""Pure decisions of a rotation: what to do, when next, what the state becomes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from service.batching import Batcher
from service.model import (
    Fingerprint,
    Outcome,
    RegistryCredential,
    RotationKey,
    RotationState,
    SourceInfo,
    Trigger,
    VerificationOutcome,
    VerificationResult,
)
from service.rotation import (
    Action,
    RotationResult,
    confirm_due,
    decide,
    lease_deadline,
    next_run,
    retry_delay,
    state_after,
    verification_allows,
)
from tests.fakes import NOW

KEY = RotationKey("eu", "acme-registry")
FP = Fingerprint(key_id="k1", digest="a" * 64)


def cred(*, lease: int | None = None, expires_in: timedelta | None = None) -> RegistryCredential:
    return RegistryCredential(
        username="u",
        password="p",
        read_at=NOW,
        source=SourceInfo(mount="m", path="p", lease_duration=lease),
        expires_at=NOW + expires_in if expires_in else None,
    )


def result(outcome: Outcome, **kw: object) -> RotationResult:
    return RotationResult(key=KEY, outcome=outcome, trigger=Trigger.SCHEDULE, run_id="r", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stored", "force", "action"),
    [
        (None, False, Action.WRITE),
        (FP, False, Action.UNCHANGED),
        (FP, True, Action.FORCE),
        (Fingerprint(key_id="k1", digest="b" * 64), False, Action.WRITE),
        (Fingerprint(key_id="k2", digest="a" * 64), False, Action.WRITE),
    ],
)
def test_decide(stored: Fingerprint | None, force: bool, action: Action) -> None:
    """Write on a new fingerprint (a new audit key id counts as new); force only matters when unchanged."""
    state = RotationState(key=KEY, fingerprint=stored, target_identity=ID) if stored else None
    assert decide(state, FP, identity=ID, force=force) is action


ID = "api.ai.example.com sb-rotator"


@pytest.mark.parametrize(
    ("stored_identity", "action"),
    [
        (ID, Action.UNCHANGED),
        ("api.other-tenant.example.com sb-rotator", Action.REPOINT),  # another AI Core host
        ("api.ai.example.com sb-someone-else", Action.REPOINT),  # the same host, another service key
        (None, Action.UNCHANGED),  # saved before identities were recorded: adopted, no write storm
    ],
)
def test_decide_includes_the_target_identity(stored_identity: str | None, action: Action) -> None:
    """An unchanged credential is written again when the target now names another tenant or client id."""
    state = RotationState(key=KEY, fingerprint=FP, target_identity=stored_identity)
    assert decide(state, FP, identity=ID, force=False) is action


@pytest.mark.parametrize(
    ("confirmed_ago", "due"),
    [(None, True), (timedelta(hours=1), False), (timedelta(hours=3), True), (timedelta(days=2), True)],
)
def test_confirm_due_once_per_schedule_period(confirmed_ago: timedelta | None, due: bool) -> None:
    """An unchanged secret is looked up in AI Core at least once per period (half a period absorbs jitter)."""
    confirmed_at = None if confirmed_ago is None else NOW - confirmed_ago
    assert confirm_due(confirmed_at, now=NOW, period=timedelta(hours=6)) is due


def test_verification_gate() -> None:
    """ok and skipped pass; unreachable passes only with on_unreachable = proceed; refusals never."""

    def check(outcome: VerificationOutcome, mode: str) -> bool:
        return verification_allows(VerificationResult(outcome, "r"), on_unreachable=mode)

    assert check(VerificationOutcome.OK, "fail")
    assert check(VerificationOutcome.SKIPPED, "fail")
    assert not check(VerificationOutcome.REGISTRY_UNREACHABLE, "fail")
    assert check(VerificationOutcome.REGISTRY_UNREACHABLE, "proceed")
    assert not check(VerificationOutcome.AUTH_FAILED, "proceed")
    assert not check(VerificationOutcome.SCOPE_DENIED, "proceed")


def test_lease_and_expiry_deadlines() -> None:
    """The renewal deadline is a fraction of the shorter of the Vault lease and the credential's own expiry."""
    assert lease_deadline(cred(), fraction=0.5) is None
    assert lease_deadline(cred(lease=3600), fraction=0.5) == NOW + timedelta(minutes=30)
    assert lease_deadline(cred(lease=3600, expires_in=timedelta(minutes=20)), fraction=0.5) == NOW + timedelta(
        minutes=10
    )
    scheduled = NOW + timedelta(minutes=5)
    assert next_run(scheduled, cred(lease=3600), fraction=0.5) == scheduled
    assert next_run(NOW + timedelta(hours=6), cred(lease=3600), fraction=0.5) == NOW + timedelta(minutes=30)


def test_state_after_success_and_failure() -> None:
    """Success resets failures and records the fingerprint; failure counts up and keeps the old one."""
    ok = state_after(None, result(Outcome.APPLIED, fingerprint=FP, source_version=3), now=NOW)
    assert (ok.fingerprint, ok.source_version, ok.last_success_at, ok.consecutive_failures) == (FP, 3, NOW, 0)
    later = NOW + timedelta(hours=1)
    bad = state_after(
        ok, result(Outcome.FAILED, fingerprint=Fingerprint(key_id="k1", digest="c" * 64), error_code="x"), now=later
    )
    bad = state_after(bad, result(Outcome.REJECTED, error_code="auth_failed", verification="auth_failed"), now=later)
    assert bad.fingerprint == FP
    assert bad.consecutive_failures == 2
    assert bad.last_error_code == "auth_failed"
    assert bad.last_success_at == NOW
    assert bad.last_attempt_at == later
    assert bad.verification == "auth_failed"
    healed = state_after(bad, result(Outcome.UNCHANGED), now=later)
    assert healed.consecutive_failures == 0
    assert healed.last_error_code is None
    assert healed.last_checked_at == later


def test_batcher_groups_concurrent_calls() -> None:
    """Calls that arrive while a flush runs go out together, each caller gets its own result."""
    batches: list[list[int]] = []
    gate = threading.Event()

    def flush(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            gate.wait(5)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush)
    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher(i))) for i in range(6)]
    threads[0].start()
    while not batches:
        pass
    for t in threads[1:]:
        t.start()
    while len(batcher._pending) < 5:  # the other five are queued behind the first flush
        pass
    gate.set()
    for t in threads:
        t.join(5)
    assert results == {i: i * 10 for i in range(6)}
    assert [len(b) for b in batches] == [1, 5]


def test_batcher_hands_the_error_to_every_caller() -> None:
    """A failed flush raises in each caller of that batch."""

    def flush(items: list[int]) -> list[int]:
        raise ValueError("database down")

    with pytest.raises(ValueError, match="database down"):
        Batcher(flush)(1)


def test_retry_delay_grows_and_is_capped() -> None:
    """Backoff doubles per failure in a row, stops at the cap, and jitter takes off at most half."""
    base, cap = timedelta(seconds=30), timedelta(minutes=10)
    delays = [retry_delay(n, base=base, cap=cap, spread=0.0) for n in range(1, 8)]
    assert delays[:5] == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480)]
    assert delays[5:] == [cap, cap]
    assert retry_delay(3, base=base, cap=cap, spread=0.999) > timedelta(seconds=60)
