"""When to retry an AI Core call, and how long to wait first. Pure: no clock, no sleep.

Exponential backoff with full jitter (a uniform draw between 0 and
``min(max_delay, base_delay * 2 ** (attempt - 1))``), bounded by a number of attempts
and a total time budget. A ``Retry-After`` from the server (seconds or an HTTP date)
replaces the jittered delay, even above ``max_delay``; when it does not fit in what is
left of the budget the caller gives up at once rather than retry too early.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from service.config import RetryConfig

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry one call. Delays and budget in seconds."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    total: float = 90.0

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        """The policy a ``[rotation.retry]`` section describes."""
        return cls(
            attempts=config.attempts,
            base_delay=config.base_delay.total_seconds(),
            max_delay=config.max_delay.total_seconds(),
            total=config.total.total_seconds(),
        )


def is_retryable_status(status: int) -> bool:
    """429 and the 5xx a gateway or an overloaded server answers; never 400, 401, 403 or 404."""
    return status in RETRYABLE_STATUSES


def backoff_delay(policy: RetryPolicy, *, attempt: int, rng: random.Random) -> float:
    """Full-jitter delay after failed attempt ``attempt`` (1-based)."""
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** max(attempt - 1, 0))
    return rng.uniform(0.0, ceiling)


def next_delay(
    policy: RetryPolicy,
    *,
    attempt: int,
    elapsed: float,
    retry_after: float | None,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
    if attempt >= policy.attempts:
        return None
    delay = retry_after if retry_after is not None else backoff_delay(policy, attempt=attempt, rng=rng)
    if elapsed + delay > policy.total:
        return None
    return delay


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delay-seconds or an HTTP date; None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None or now.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)
