"""The retry policy: full-jitter backoff, Retry-After, attempts and time budget (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from service.aicore.retry import (
    RetryPolicy,
    backoff_delay,
    is_retryable_status,
    next_delay,
    parse_retry_after,
)
from service.config import RetryConfig

POLICY = RetryPolicy(attempts=5, base_delay=0.5, max_delay=4.0, total=30.0)
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_policy_from_config_converts_durations_to_seconds() -> None:
    """A [rotation.retry] section becomes a policy in seconds."""
    config = RetryConfig(attempts=6, base_delay=timedelta(milliseconds=250), max_delay="10s", total="2m")
    assert RetryPolicy.from_config(config) == RetryPolicy(attempts=6, base_delay=0.25, max_delay=10.0, total=120.0)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (12, 4.0)])
def test_backoff_stays_under_the_doubling_ceiling(attempt: int, ceiling: float) -> None:
    """Attempt n waits between 0 and min(max_delay, base * 2^(n-1))."""
    rng = random.Random(1)
    delays = [backoff_delay(POLICY, attempt=attempt, rng=rng) for _ in range(500)]
    assert all(0.0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.9  # full jitter spreads over the whole range


def test_backoff_is_jittered_not_fixed() -> None:
    """Two draws for the same attempt differ (full jitter), so replicas do not retry in step."""
    rng = random.Random(2)
    assert len({backoff_delay(POLICY, attempt=3, rng=rng) for _ in range(20)}) == 20


def test_backoff_is_reproducible_with_a_seeded_random() -> None:
    """The injected random.Random is the only source of randomness."""
    first = [backoff_delay(POLICY, attempt=n, rng=random.Random(9)) for n in range(1, 5)]
    again = [backoff_delay(POLICY, attempt=n, rng=random.Random(9)) for n in range(1, 5)]
    assert first == again


def test_no_delay_after_the_last_attempt() -> None:
    """With attempts=5, the fifth failure is final."""
    assert next_delay(POLICY, attempt=4, elapsed=0.0, retry_after=None, rng=random.Random(0)) is not None
    assert next_delay(POLICY, attempt=5, elapsed=0.0, retry_after=None, rng=random.Random(0)) is None


def test_retry_after_replaces_the_backoff_even_above_max_delay() -> None:
    """A server's Retry-After is honoured exactly, also beyond max_delay."""
    assert next_delay(POLICY, attempt=1, elapsed=0.0, retry_after=7.0, rng=random.Random(0)) == 7.0


def test_give_up_when_the_wait_does_not_fit_the_budget() -> None:
    """A delay that would end past the total budget means: give up now, do not retry early."""
    assert next_delay(POLICY, attempt=1, elapsed=25.0, retry_after=6.0, rng=random.Random(0)) is None
    assert next_delay(POLICY, attempt=1, elapsed=25.0, retry_after=5.0, rng=random.Random(0)) == 5.0


def test_budget_bounds_jittered_delays_too() -> None:
    """Once the budget is spent, no retry, whatever the attempt count."""
    assert next_delay(POLICY, attempt=1, elapsed=30.0, retry_after=None, rng=random.Random(0)) is None


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (502, True), (503, True), (504, True)])
def test_throttling_and_server_errors_are_retryable(status: int, retryable: bool) -> None:
    """429 and 5xx are worth another try."""
    assert is_retryable_status(status) is retryable


@pytest.mark.parametrize("status", [200, 202, 400, 401, 403, 404, 409, 415])
def test_client_errors_are_not_retryable(status: int) -> None:
    """400, 401, 403, 404 and other client errors are final (401 has its own single refresh)."""
    assert not is_retryable_status(status)


def test_retry_after_in_seconds() -> None:
    """Delay-seconds form."""
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after(" 0 ", now=NOW) == 0.0


def test_retry_after_as_http_date() -> None:
    """HTTP-date form, relative to the given now."""
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now=NOW) == 30.0


def test_retry_after_date_in_the_past_means_now() -> None:
    """A date already past gives 0, never a negative delay."""
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Sun, 99 Foo 2026"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    """Absent or malformed values give None (the jittered backoff applies)."""
    assert parse_retry_after(value, now=NOW) is None
