"""Retries against the emulator: 429 with Retry-After, 5xx, timeouts, bounded attempts and budget."""

from __future__ import annotations

import dataclasses
import time
from email.utils import formatdate

import pytest

from service.aicore.retry import RetryPolicy
from service.errors import AICoreError, BadRequest, Forbidden, OutcomeUnknown, RateLimited, SecretNotFound, Unavailable
from service.model import DockerConfigJson
from service.sandbox.processes import free_port
from tests.integration.aicore.conftest import Rig, config_json, count


def seeded(rig: Rig) -> None:
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")


def test_429_waits_for_retry_after_then_succeeds(rig: Rig) -> None:
    """A 429 with Retry-After: 7 is retried after exactly 7 seconds, then the PATCH lands."""
    seeded(rig)
    rig.emulator.fail_next("tenant-a", status=429, retry_after=7)
    assert rig.client().edit("my-registry", config_json("pw-9")).status == 202
    assert rig.sleeps == [7.0]
    assert rig.emulator.inspect.stored("tenant-a", "my-registry") == config_json("pw-9").reveal()


def test_retry_after_as_an_http_date(rig: Rig) -> None:
    """Retry-After as an HTTP date is read against the server's Date header."""
    rig.emulator.fail_next("tenant-a", status=429, retry_after=formatdate(time.time() + 30, usegmt=True))
    rig.client().list_names()
    assert len(rig.sleeps) == 1
    assert 28.0 <= rig.sleeps[0] <= 31.0


def test_5xx_then_success(rig: Rig) -> None:
    """Two 503s and a 502 are retried with jittered backoff; the fourth attempt succeeds."""
    seeded(rig)
    for status in (503, 503, 502):
        rig.emulator.fail_next("tenant-a", status=status)
    assert rig.client().edit("my-registry", config_json()).status == 202
    assert len(rig.sleeps) == 3
    assert all(0 <= delay <= 0.1 for delay in rig.sleeps)
    assert count(rig, method="PATCH") == 4
    assert [w.method for w in rig.emulator.inspect.writes("tenant-a")] == ["PATCH"]


def test_timeout_then_success(rig: Rig) -> None:
    """A PATCH that times out is sent again (safe: it sets the whole value) and succeeds."""
    seeded(rig)
    rig.emulator.stall_next("tenant-a", seconds=0.3)
    assert rig.client(timeout=0.05).edit("my-registry", config_json("pw-5")).status == 202
    assert len(rig.sleeps) == 1
    assert count(rig, method="PATCH") == 2


def test_attempts_bound_the_retries(rig: Rig) -> None:
    """attempts=3 means three requests, two waits, then the error."""
    rig.emulator.fail_next("tenant-a", status=500, count=10)
    with pytest.raises(Unavailable):
        rig.client(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.1, total=60)).get("my-registry")
    assert count(rig, endpoint="secret") == 3
    assert len(rig.sleeps) == 2


def test_retry_after_beyond_the_budget_gives_up_at_once(rig: Rig) -> None:
    """Retry-After: 120 with a 60 s budget: RateLimited without waiting, one request only."""
    rig.emulator.fail_next("tenant-a", status=429, retry_after=120)
    with pytest.raises(RateLimited) as caught:
        rig.client().list_names()
    assert rig.sleeps == []
    assert caught.value.status == 429
    assert count(rig, endpoint="secrets") == 1


def test_time_budget_bounds_the_retries(rig: Rig) -> None:
    """With a 1 s budget and Retry-After 0.6, the second wait would end past the budget: two requests."""
    rig.emulator.fail_next("tenant-a", status=429, count=5, retry_after="1")
    retry = RetryPolicy(attempts=10, base_delay=0.01, max_delay=0.1, total=1.5)
    with pytest.raises(RateLimited):
        rig.client(retry=retry).list_names()
    assert rig.sleeps == [1.0]
    assert count(rig, endpoint="secrets") == 2


@pytest.mark.parametrize(("expected", "status"), [(BadRequest, 400), (Forbidden, 403), (SecretNotFound, 404)])
def test_no_retry_on_400_403_404(rig: Rig, expected: type[AICoreError], status: int) -> None:
    """Client errors are final: one request, no wait."""
    seeded(rig)
    name, value = "my-registry", config_json()
    if status == 400:
        value = DockerConfigJson("[not json")
    elif status == 403:
        rig.emulator.set_editor("tenant-a", False)
    else:
        name = "other-registry"
    with pytest.raises(expected) as caught:
        rig.client().edit(name, value)
    assert caught.value.status == status
    assert count(rig, method="PATCH") == 1
    assert rig.sleeps == []


def test_a_patch_that_lands_after_the_timeout_is_unknown_not_failed(rig: Rig) -> None:
    """Every attempt times out after sending, and AI Core applies them late: the error says the outcome is unknown."""
    seeded(rig)
    rig.emulator.stall_next("tenant-a", seconds=0.3, count=2)
    client = rig.client(timeout=0.05, retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01, total=5))
    with pytest.raises(OutcomeUnknown, match="may have been applied") as caught:
        client.edit("my-registry", config_json("pw-late"))
    assert caught.value.code == "aicore_outcome_unknown"
    time.sleep(0.5)  # the stalled requests finish on the server
    assert rig.emulator.inspect.stored("tenant-a", "my-registry") == config_json("pw-late").reveal()


def test_a_patch_refused_before_sending_stays_unavailable(rig: Rig) -> None:
    """Nothing listening (connection refused): the PATCH cannot have landed, so it is plainly unavailable."""
    closed = dataclasses.replace(rig.key("tenant-a"), api_url=f"http://127.0.0.1:{free_port()}/v2")
    client = rig.client(key=closed, retry=RetryPolicy(attempts=1, base_delay=0, max_delay=0, total=1))
    with pytest.raises(Unavailable) as caught:
        client.edit("my-registry", config_json())
    assert not isinstance(caught.value, OutcomeUnknown)


def test_an_earlier_attempt_that_may_have_landed_makes_the_final_error_unknown(rig: Rig) -> None:
    """A timeout after sending, then 503s until the budget is spent: still unknown, the first may have applied."""
    seeded(rig)
    rig.emulator.stall_next("tenant-a", seconds=0.3)
    rig.emulator.fail_next("tenant-a", status=503, count=5)
    client = rig.client(timeout=0.05, retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01, total=5))
    with pytest.raises(OutcomeUnknown):
        client.edit("my-registry", config_json("pw-maybe"))
