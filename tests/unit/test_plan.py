"""`rotator plan`'s verdicts: pure, from a dry run's result and AI Core's read-only answers."""

from __future__ import annotations

from service.config import SecretConfig, SourceConfig
from service.model import Outcome, RotationKey, SecretSpec, Trigger
from service.plan import TargetAnswer, verdict
from service.rotation import RotationResult

KEY = RotationKey("eu", "acme-registry")
OK = TargetAnswer(count=3, max_count=10)


def _secret(*, create_missing: bool = False) -> SecretSpec:
    return SecretConfig(
        name="acme-registry",
        targets=["eu"],
        registries=["registry.acme.example"],
        source=SourceConfig(path="registries/acme"),
        create_missing=create_missing,
    ).spec()


def _dry(*, would_write: bool, outcome: Outcome = Outcome.DRY_RUN, **more: object) -> RotationResult:
    return RotationResult(key=KEY, outcome=outcome, trigger=Trigger.MANUAL, run_id="r", would_write=would_write, **more)  # type: ignore[arg-type]


def test_a_changed_credential_on_an_existing_secret_is_a_write() -> None:
    """Would write, and AI Core has the secret: ``write``."""
    assert verdict(_dry(would_write=True), secret=_secret(), target=OK, exists=True).action == "write"


def test_a_missing_secret_is_created_only_with_create_missing_and_room_in_the_quota() -> None:
    """Missing: ``fail`` without create_missing, ``create`` with it, ``fail`` again when the quota is full."""
    assert verdict(_dry(would_write=True), secret=_secret(), target=OK, exists=False).action == "fail"
    creating = _secret(create_missing=True)
    assert verdict(_dry(would_write=False), secret=creating, target=OK, exists=False).action == "create"
    full = TargetAnswer(count=10, max_count=10)
    refused = verdict(_dry(would_write=True), secret=creating, target=full, exists=False)
    assert (refused.action, refused.failed) == ("fail", True)
    assert "10/10" in refused.detail


def test_an_unreachable_target_or_a_failed_read_fails_the_pair() -> None:
    """AI Core's error, or the dry run's own failure, is the pair's verdict with its code."""
    down = TargetAnswer(error="[aicore_unavailable] connection refused")
    assert "aicore_unavailable" in verdict(_dry(would_write=True), secret=_secret(), target=down, exists=None).detail
    failed = _dry(would_write=False, outcome=Outcome.FAILED, error_code="source_not_found", message="no data")
    line = verdict(failed, secret=_secret(), target=OK, exists=True).line()
    assert line.startswith("fail")
    assert "[source_not_found] no data" in line


def test_a_paused_pair_is_reported_as_paused() -> None:
    """A pause decides before AI Core is asked."""
    paused = _dry(would_write=False, outcome=Outcome.PAUSED, message="paused (everything) by alice: freeze")
    assert verdict(paused, secret=_secret(), target=OK, exists=None).action == "paused"
