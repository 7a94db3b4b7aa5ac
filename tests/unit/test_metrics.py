"""Prometheus conventions: process collectors, no `_created`, absent expiry, a per-pair synced gauge."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from tests.fakes import NOW


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.exposition()[0].decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def names(metrics: Metrics) -> set[str]:
    return {name for name, _ in samples(metrics)}


def rotate(metrics: Metrics, outcome: str, *, target: str = "eu", secret: str = "acme-registry") -> None:
    metrics.rotation(
        target=target,
        secret=secret,
        outcome=outcome,
        seconds=0.1,
        at=NOW,
        success=outcome in ("applied", "unchanged"),
        verification=None,
    )


def test_process_and_platform_collectors_are_on() -> None:
    """Start time, resident memory, open fds and the Python version are exported."""
    exported = names(Metrics())
    for name in ("process_start_time_seconds", "process_resident_memory_bytes", "process_open_fds", "python_info"):
        assert name in exported


def test_no_created_series() -> None:
    """Counters and histograms export no `_created` companion series."""
    metrics = Metrics()
    rotate(metrics, "applied")
    metrics.sweep_duration.observe(1.0)
    assert [name for name in names(metrics) if name.endswith("_created")] == []
    assert "rotator_rotations_total" in names(metrics)


def test_vault_token_expiry_is_absent_when_the_token_never_expires() -> None:
    """The expiry series is absent (not 0) before it is known and once the token never expires."""
    metrics = Metrics()
    assert "rotator_vault_token_expiry_timestamp_seconds" not in names(metrics)
    metrics.vault_token_expires_at(NOW.timestamp())
    assert samples(metrics)["rotator_vault_token_expiry_timestamp_seconds", frozenset()] == NOW.timestamp()
    metrics.vault_token_expires_at(None)
    assert "rotator_vault_token_expiry_timestamp_seconds" not in names(metrics)


@pytest.mark.parametrize(
    ("outcomes", "synced"),
    [
        (["applied"], 1.0),
        (["unchanged"], 1.0),
        (["applied", "failed"], 0.0),
        (["applied", "rejected"], 0.0),
        (["applied", "unknown"], 0.0),
        (["failed", "unchanged"], 1.0),
        (["failed", "skipped"], 0.0),
        (["applied", "dry_run"], 1.0),
    ],
)
def test_synced_gauge_follows_the_last_real_attempt(outcomes: list[str], synced: float) -> None:
    """rotator_secret_synced is 1 after applied/unchanged, 0 after failed/rejected/unknown; skips leave it."""
    metrics = Metrics()
    for outcome in outcomes:
        rotate(metrics, outcome)
    rotate(metrics, "failed", target="us")
    got = samples(metrics)
    assert got["rotator_secret_synced", frozenset({("target", "eu"), ("secret", "acme-registry")})] == synced
    assert got["rotator_secret_synced", frozenset({("target", "us"), ("secret", "acme-registry")})] == 0.0


def test_secret_without_an_attempt_has_no_synced_series() -> None:
    """A pair that never ran exports no synced sample (absent, not a false 0)."""
    metrics = Metrics()
    rotate(metrics, "skipped")
    assert "rotator_secret_synced" not in names(metrics)


def test_sample_counter_exports_what_prometheus_clients_counter_would() -> None:
    """The per-pair rotation counter: the same HELP, TYPE and ``_total`` samples as a ``Counter`` with those labels."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from service.metrics import SampleCounter

    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = SampleCounter(
        "rotator_rotations", "Rotations by outcome.", ("target", "secret", "outcome"), registry=ours_registry
    )
    theirs = Counter(
        "rotator_rotations", "Rotations by outcome.", ["target", "secret", "outcome"], registry=theirs_registry
    )
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)  # no sample before the first count
    for labels, times in (
        (("eu", "acme", "applied"), 3),
        (("eu", "acme", "failed"), 1),
        (("us", "acme", "applied"), 2),
    ):
        for _ in range(times):
            ours.inc(labels)
            theirs.labels(*labels).inc()
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)
    assert ours.get(("eu", "acme", "applied")) == 3


def test_sample_counter_counts_every_increment_from_many_threads() -> None:
    import threading

    from prometheus_client import CollectorRegistry

    from service.metrics import SampleCounter

    counter = SampleCounter("c", "c", ("pair",), registry=CollectorRegistry())

    def count() -> None:
        for _ in range(2_000):
            counter.inc(("p",))

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.get(("p",)) == 16_000
