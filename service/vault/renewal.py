"""Pure decisions about the service's own Vault token: when to renew it, when to log in again.

Times are seconds on the session's monotonic clock; every decision takes ``now``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class TokenLease:
    """What Vault told us about our token when we logged in or last renewed it."""

    obtained_at: float  # session clock
    ttl: float  # seconds; 0 means the token never expires (e.g. a root token)
    renewable: bool
    capped: bool = False  # the last renewal got less than the full TTL: the max TTL is near

    @property
    def expires_at(self) -> float | None:
        return self.obtained_at + self.ttl if self.ttl > 0 else None


class Step(enum.Enum):
    """What ``VaultSession.maintain`` should do now."""

    NOTHING = "nothing"
    RENEW = "renew"
    LOGIN = "login"


def renewal_due(lease: TokenLease, *, now: float, fraction: float) -> bool:
    """True once ``fraction`` of the token's TTL has passed; never for a token without a TTL."""
    return lease.ttl > 0 and now >= lease.obtained_at + lease.ttl * fraction


def expired(lease: TokenLease, *, now: float) -> bool:
    """True once the token's TTL has run out."""
    return lease.expires_at is not None and now >= lease.expires_at


def next_step(lease: TokenLease | None, *, now: float, fraction: float) -> Step:
    """Renew a renewable token when due; log in again when it cannot be renewed usefully."""
    if lease is None:
        return Step.LOGIN
    if not renewal_due(lease, now=now, fraction=fraction):
        return Step.NOTHING
    if lease.renewable and not lease.capped and not expired(lease, now=now):
        return Step.RENEW
    return Step.LOGIN


def renewed(lease: TokenLease, *, granted: float, renewable: bool, now: float) -> TokenLease:
    """The lease after a renewal; less than the previous TTL means Vault capped it at the max TTL."""
    return replace(lease, obtained_at=now, ttl=granted, renewable=renewable, capped=granted < lease.ttl)
