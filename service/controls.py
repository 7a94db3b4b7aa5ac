"""Operator controls as values: pauses and pins, and the pure decisions over them.

A ``Pause`` covers one pair, one secret on every target, one target for every secret, or
everything (``ANY`` in both places: the global kill switch). A ``Pin`` holds one pair at a
KV v2 version after a rollback. ``Holds`` is what one sweep reads once for all its pairs
(``service.ports.OperatorControls``). Nothing here does I/O.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from service.model import RotationKey

ANY = "*"
OPERATOR_ENV = "ROTATOR_OPERATOR"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """What a pause or resume names: ``ANY`` stands for every target or every secret."""

    target: str = ANY
    secret: str = ANY

    def covers(self, key: RotationKey) -> bool:
        return self.target in (ANY, key.target) and self.secret in (ANY, key.secret)

    def __str__(self) -> str:
        if self.target == ANY and self.secret == ANY:
            return "everything (--all)"
        if self.target == ANY:
            return f"secret {self.secret} on every target"
        if self.secret == ANY:
            return f"target {self.target} (every secret)"
        return f"{self.target}/{self.secret}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    scope: Scope
    operator: str
    reason: str
    created_at: datetime | None = None

    def describe(self) -> str:
        """``paused (<scope>) by <operator> since <time>: <reason>``."""
        return f"paused ({self.scope}) {self.by()}"

    def by(self) -> str:
        """``by <operator> since <time>: <reason>``."""
        since = f" since {self.created_at.isoformat(timespec='seconds')}" if self.created_at else ""
        return f"by {self.operator}{since}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    key: RotationKey
    version: int
    operator: str
    reason: str
    created_at: datetime | None = None

    def describe(self) -> str:
        return f"pinned to version {self.version} by {self.operator}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Holds:
    """The pauses in force and the pins of the pairs asked about."""

    pauses: tuple[Pause, ...] = ()
    pins: Mapping[RotationKey, Pin] = field(default_factory=dict)

    def pause_of(self, key: RotationKey) -> Pause | None:
        """The pause that covers ``key`` (the widest first: the kill switch is the one to lift), or None."""
        covering = [pause for pause in self.pauses if pause.scope.covers(key)]
        return min(covering, key=_narrowness) if covering else None

    def pin_of(self, key: RotationKey) -> Pin | None:
        return self.pins.get(key)


def _narrowness(pause: Pause) -> int:
    return (pause.scope.target != ANY) + (pause.scope.secret != ANY)


def default_operator(environ: Mapping[str, str] | None = None) -> str:
    """``$ROTATOR_OPERATOR``, else the OS user at this host."""
    env = os.environ if environ is None else environ
    named = env.get(OPERATOR_ENV, "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except OSError:  # no user name in the environment nor in the password database
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
