"""``RotatorOptions``: what the composition root tells the engine, as plain values and callables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from service.model import SecretSpec
from service.rotation import AuditKeys


class WindowHold(Protocol):
    """What holds a secret's writes now (``service.windows.Block``): until when, and why."""

    @property
    def until(self) -> datetime: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RotatorOptions:
    audit_key: bytes = field(repr=False)
    audit_key_id: str
    actor: str  # who writes: "rotator/<version>@<instance>"
    owner: str  # lease owner: this process
    lease_ttl: timedelta
    max_concurrency: int
    per_target_concurrency: int
    target_concurrency: Mapping[str, int] = field(default_factory=dict)
    renew_fraction: float = 0.67
    failure_backoff: timedelta = timedelta(seconds=30)
    failure_backoff_max: timedelta = timedelta(hours=1)
    # Keys of earlier audit key ids: a credential applied under one of them is still unchanged.
    previous_audit_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    schedule_next: Callable[[SecretSpec, datetime], datetime] | None = None
    # The schedule's period: an unchanged secret is looked up in AI Core once per period (drift).
    # None: never (unit tests that count calls).
    confirm_every: Callable[[SecretSpec, datetime], timedelta] | None = None
    # Deny / allow windows: what holds the entry's writes at a time (service.windows.blocked), if anything.
    window_block: Callable[[SecretSpec, datetime], WindowHold | None] | None = None
    # Called as idle pool threads leave, each time half of them have (the worker trims malloc then).
    on_pool_shrunk: Callable[[], object] | None = None

    @property
    def audit_keys(self) -> AuditKeys:
        return AuditKeys(key_id=self.audit_key_id, key=self.audit_key, previous=self.previous_audit_keys)
