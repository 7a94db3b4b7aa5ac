"""`rotator plan`: what `once` would do for each pair, asking Vault, the registry and AI Core read-only.

A dry-run sweep reads each source, renders, fingerprints and verifies (pauses, pins and
windows apply as in a real run). Then AI Core is asked what it can answer without a change:
a token and the quota per target, and one GET per pair for the secret's existence. ``verdict``
turns those answers into one of ``write``, ``unchanged``, ``create``, ``fail``, ``paused`` or
``deferred``, with the reason. Nothing is written anywhere: no audit row, no state, no lease.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from service.errors import RotatorError
from service.model import Outcome, RotationKey, SecretSpec, short_fingerprint
from service.rotation import RotationResult


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetAnswer:
    """What AI Core said about one target: a token and its quota, or why not."""

    count: int | None = None
    max_count: int | None = None
    error: str | None = None

    @property
    def full(self) -> bool:
        return self.count is not None and self.max_count is not None and self.count >= self.max_count


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    key: RotationKey
    action: str  # write | unchanged | create | fail | paused | deferred
    detail: str
    result: RotationResult

    @property
    def failed(self) -> bool:
        return self.action == "fail"

    def line(self) -> str:
        parts = [f"{self.action:<10}", str(self.key)]
        if self.result.fingerprint:
            parts.append(short_fingerprint(self.result.fingerprint) or "")
        if self.result.source_version is not None:
            parts.append(f"v{self.result.source_version}")
        if self.detail:
            parts.append(self.detail)
        return "  ".join(parts)


def verdict(result: RotationResult, *, secret: SecretSpec, target: TargetAnswer, exists: bool | str | None) -> Verdict:
    """What ``once`` would do, from the dry run's ``result``, the target's answer and the secret's existence.

    ``exists`` is True/False from AI Core's GET, an error text when the GET failed, or None when not asked.
    """
    action, detail = _before_writing(result, target, exists) or _writing(result, secret, target, exists=exists)
    return Verdict(key=result.key, action=action, detail=detail, result=result)


def _before_writing(result: RotationResult, target: TargetAnswer, exists: bool | str | None) -> tuple[str, str] | None:
    """A pause, a window, or a failure (dry run or AI Core) decides before any write would."""
    if result.outcome in (Outcome.PAUSED, Outcome.DEFERRED):
        return str(result.outcome), result.message or ""
    if result.outcome is not Outcome.DRY_RUN:  # failed or rejected before AI Core was needed
        return "fail", f"[{result.error_code}] {result.message or ''}".rstrip()
    if target.error is not None:
        return "fail", f"AI Core: {target.error}"
    if isinstance(exists, str):
        return "fail", f"AI Core: {exists}"
    return None


def _writing(
    result: RotationResult, secret: SecretSpec, target: TargetAnswer, *, exists: bool | str | None
) -> tuple[str, str]:
    verified = f"verification {result.verification}" if result.verification else ""
    if exists is False and not secret.create_missing:
        return "fail", "the secret does not exist in AI Core: create it first, or set create_missing"
    if exists is False and target.full:
        return "fail", f"the secret does not exist and the quota is full ({target.count}/{target.max_count})"
    if exists is False:
        return "create", "; ".join(filter(None, ["does not exist in AI Core (create_missing)", verified]))
    if result.would_write:
        return "write", "; ".join(filter(None, ["the credential changed", verified]))
    return "unchanged", "same fingerprint as the last one applied"


def ask_targets(targets: Iterable[str], *, quota: Callable[[str], tuple[int | None, int]]) -> dict[str, TargetAnswer]:
    """One token and quota read per target; an error becomes the target's answer."""
    answers = {}
    for target in targets:
        try:
            count, max_count = quota(target)
        except RotatorError as e:
            answers[target] = TargetAnswer(error=f"[{e.code}] {e}")
        else:
            answers[target] = TargetAnswer(count=count, max_count=max_count)
    return answers


def ask_exists(
    keys: Iterable[RotationKey], *, answers: Mapping[str, TargetAnswer], get: Callable[[RotationKey], bool]
) -> dict[RotationKey, bool | str]:
    """One GET per pair whose target answered; an error becomes that pair's answer."""
    found: dict[RotationKey, bool | str] = {}
    for key in keys:
        if answers[key.target].error is not None:
            continue
        try:
            found[key] = get(key)
        except RotatorError as e:
            found[key] = f"[{e.code}] {e}"
    return found


def quota_line(target: str, answer: TargetAnswer) -> str:
    if answer.error is not None:
        return f"target {target}: {answer.error}"
    used = "?" if answer.count is None else str(answer.count)
    return f"target {target}: token ok; {used} of {answer.max_count} Docker registry secrets used"
