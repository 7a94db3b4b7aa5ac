"""When the service renews its Vault token and when it logs in again (pure decisions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.vault.renewal import Step, TokenLease, expired, next_step, renewal_due, renewed

LEASE = TokenLease(obtained_at=1000.0, ttl=60.0, renewable=True)


def test_not_due_before_the_fraction() -> None:
    """Before 2/3 of the TTL has passed the token is left alone."""
    assert not renewal_due(LEASE, now=1000.0 + 40.1, fraction=0.67 + 0.01)
    assert not renewal_due(LEASE, now=1039.0, fraction=0.67)


def test_due_from_the_fraction_on() -> None:
    """From 2/3 of the TTL on, renewal is due."""
    assert renewal_due(LEASE, now=1000.0 + 60 * 0.67, fraction=0.67)
    assert renewal_due(LEASE, now=1059.0, fraction=0.67)


def test_token_without_ttl_is_never_due() -> None:
    """A token without a TTL (root, or a periodic token reported as 0) is never renewed."""
    lease = TokenLease(obtained_at=0.0, ttl=0.0, renewable=False)

    assert not renewal_due(lease, now=10**9, fraction=0.5)
    assert next_step(lease, now=10**9, fraction=0.5) is Step.NOTHING
    assert lease.expires_at is None


@given(
    ttl=st.floats(min_value=1, max_value=10**7),
    fraction=st.floats(min_value=0.05, max_value=0.95),
    obtained_at=st.floats(min_value=0, max_value=10**6),
)
def test_renewal_always_falls_before_expiry(ttl: float, fraction: float, obtained_at: float) -> None:
    """For any TTL and fraction below 1, renewal becomes due while the token is still valid."""
    lease = TokenLease(obtained_at=obtained_at, ttl=ttl, renewable=True)
    due_at = obtained_at + ttl * fraction

    assert renewal_due(lease, now=due_at, fraction=fraction)
    assert not expired(lease, now=due_at)
    assert next_step(lease, now=due_at, fraction=fraction) is Step.RENEW


@pytest.mark.parametrize(
    ("lease", "now", "step"),
    [
        (None, 0.0, Step.LOGIN),
        (LEASE, 1010.0, Step.NOTHING),
        (LEASE, 1045.0, Step.RENEW),
        (TokenLease(obtained_at=1000.0, ttl=60.0, renewable=False), 1045.0, Step.LOGIN),
        (TokenLease(obtained_at=1000.0, ttl=60.0, renewable=True, capped=True), 1045.0, Step.LOGIN),
        (LEASE, 1060.0, Step.LOGIN),
        (LEASE, 5000.0, Step.LOGIN),
    ],
    ids=["no-token", "early", "due", "not-renewable", "capped", "expired-exactly", "long-pause"],
)
def test_next_step(lease: TokenLease | None, now: float, step: Step) -> None:
    """Renew a renewable token when due; log in without a token, or when renewal cannot help."""
    assert next_step(lease, now=now, fraction=0.67) is step


def test_full_renewal_is_not_capped() -> None:
    """A renewal granting the full TTL again restarts the lease at now."""
    lease = renewed(LEASE, granted=60.0, renewable=True, now=1040.0)

    assert lease == TokenLease(obtained_at=1040.0, ttl=60.0, renewable=True, capped=False)
    assert lease.expires_at == 1100.0


def test_short_renewal_is_capped() -> None:
    """A renewal granting less than before means the max TTL is near: the next step is a login."""
    lease = renewed(LEASE, granted=12.0, renewable=True, now=1040.0)

    assert lease.capped
    assert next_step(lease, now=1040.0 + 12 * 0.67, fraction=0.67) is Step.LOGIN
