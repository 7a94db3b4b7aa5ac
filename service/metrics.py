"""Prometheus metrics: the only module that imports prometheus_client.

Labels hold names (target, secret, outcome), never a value. Each ``Metrics`` has its own
registry, so tests and several workers in one process do not share counters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from service import __version__

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# The synced gauge (ESO's condition metric): 1 once a pair is confirmed up to date, 0 when
# its last real attempt did not get there. Skipped, dry runs and interruptions leave it.
SYNCED_OUTCOMES = frozenset({"applied", "unchanged"})
UNSYNCED_OUTCOMES = frozenset({"failed", "rejected", "unknown"})

# `_created` series double every counter and histogram for a value nobody alerts on.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


class OptionalGauge(Collector):
    """An unlabelled gauge that is absent until set, and absent again once cleared.

    prometheus_client exports an unlabelled ``Gauge`` as 0 from the start; for a timestamp
    that would read as "expired in 1970" and fire every expiry alert.
    """

    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self.value: float | None = None
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.value is not None:
            yield GaugeMetricFamily(self._name, self._documentation, value=self.value)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._documentation)


class SampleGauge(Collector):
    """A labelled gauge kept as one dict of label values -> value, exported as prometheus_client's ``Gauge`` would be.

    A ``Gauge`` keeps a child object (its own lock and value holder) per label set: with
    5,000 pairs, each per-pair gauge held about 3 MB of children. Values are set from
    several threads: one dict assignment each, and ``collect`` reads a copy under a lock.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], *, registry: CollectorRegistry):
        self._name = name
        self._documentation = documentation
        self._labelnames = labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, labels: tuple[str, ...], value: float) -> None:
        """The sample of ``labels`` (values in ``labelnames`` order) becomes ``value``."""
        with self._lock:
            self._values[labels] = float(value)

    def get(self, labels: tuple[str, ...]) -> float | None:
        return self._values.get(labels)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=self._labelnames)
        with self._lock:
            samples = list(self._values.items())
        for labels, value in samples:
            family.add_metric(labels, value)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._documentation, labels=self._labelnames)


PAIR = ("target", "secret")


class Metrics:
    """Every metric the worker exports, with small methods that keep label use consistent."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rotations = Counter(
            "rotator_rotations", "Rotations by outcome.", ["target", "secret", "outcome"], registry=r
        )
        self.duration = Histogram(
            "rotator_rotation_duration_seconds", "Duration of one rotation.", buckets=DURATION_BUCKETS, registry=r
        )
        self.last_success = SampleGauge(
            "rotator_last_success_timestamp_seconds",
            "When the secret was last confirmed up to date (written or unchanged).",
            PAIR,
            registry=r,
        )
        self.last_attempt = SampleGauge(
            "rotator_last_attempt_timestamp_seconds",
            "When a rotation was last attempted.",
            PAIR,
            registry=r,
        )
        self.next_run = SampleGauge(
            "rotator_next_run_timestamp_seconds", "Next scheduled run of the secret.", ("secret",), registry=r
        )
        self.credential_expiry = SampleGauge(
            "rotator_credential_expiry_timestamp_seconds",
            "When the current credential expires, where the source says.",
            ("secret",),
            registry=r,
        )
        self.vault_token_expiry = OptionalGauge(
            "rotator_vault_token_expiry_timestamp_seconds",
            "When the rotator's own Vault token expires; absent when it never does.",
            registry=r,
        )
        self.synced = SampleGauge(
            "rotator_secret_synced",
            "1 if the pair's last rotation left it up to date (applied or unchanged), 0 if it failed.",
            PAIR,
            registry=r,
        )
        self.audit_write_failures = Counter("rotator_audit_write_failures", "Audit appends that failed.", registry=r)
        self.verification_ok = SampleGauge(
            "rotator_verification_ok",
            "1 if the registry accepted the secret's credential at the last check, else 0.",
            PAIR,
            registry=r,
        )
        self.paused = SampleGauge(
            "rotator_paused",
            "1 while an operator's pause (`rotator pause`) holds the pair, else 0; set at each sweep.",
            PAIR,
            registry=r,
        )
        self.stale = SampleGauge(
            "rotator_secret_stale",
            "1 if the pair's last success is older than its schedule allows (period + misfire grace), else 0.",
            PAIR,
            registry=r,
        )
        self._children: dict[tuple[int | str, ...], Any] = {}  # labelled children by (metric, labels)
        self.notifications = Counter(
            "rotator_notifications",
            "Notifications sent (result ok) or failed, by kind.",
            ["kind", "result"],
            registry=r,
        )
        self.audit_head = Gauge("rotator_audit_chain_head_seq", "Sequence number of the audit chain head.", registry=r)
        self.anchor_failures = Counter(
            "rotator_audit_anchor_failures",
            "Signed anchors not written, by sink (log, file, vault) or signing.",
            ["sink"],
            registry=r,
        )
        self.sweep_duration = Histogram(
            "rotator_sweep_duration_seconds", "Duration of one sweep.", buckets=DURATION_BUCKETS, registry=r
        )
        build = Gauge("rotator_build_info", "Build information.", ["version"], registry=r)
        build.labels(version=__version__).set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def rotation(
        self,
        *,
        target: str,
        secret: str,
        outcome: str,
        seconds: float,
        at: datetime,
        success: bool,
        verification: str | None,
    ) -> None:
        """Record one finished rotation."""
        child = self._child
        child(self.rotations, target, secret, outcome).inc()
        self.duration.observe(seconds)
        if outcome == "skipped":
            return
        pair = (target, secret)
        self.paused.set(pair, 1 if outcome == "paused" else 0)
        if outcome == "paused":
            return
        self.last_attempt.set(pair, at.timestamp())
        if success:
            self.last_success.set(pair, at.timestamp())
        if verification not in (None, "skipped"):
            self.verification_ok.set(pair, 1 if verification == "ok" else 0)
        if outcome in SYNCED_OUTCOMES | UNSYNCED_OUTCOMES:
            self.synced.set(pair, 1 if outcome in SYNCED_OUTCOMES else 0)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: ``labels()`` validates and locks on every call.

        A child is made only when first set, as ``labels()`` would (an unset gauge is absent
        from /metrics rather than 0); the cache holds what the registry holds anyway.
        """
        key: tuple[int | str, ...] = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def pair_stale(self, *, target: str, secret: str, stale: bool) -> None:
        """1 while the pair's last success is older than its schedule allows, else 0."""
        self.stale.set((target, secret), 1 if stale else 0)

    def next_run_at(self, *, secret: str, at: datetime) -> None:
        """The secret's next scheduled run."""
        self.next_run.set((secret,), at.timestamp())

    def credential_expires_at(self, *, secret: str, at: datetime) -> None:
        """When the secret's current credential expires, where the source says."""
        self.credential_expiry.set((secret,), at.timestamp())

    def vault_token_expires_at(self, at: float | None) -> None:
        """When our Vault token expires (epoch seconds); None (never) removes the series."""
        self.vault_token_expiry.value = at

    def notification(self, *, kind: str, ok: bool) -> None:
        """One notification delivered (or not) to every Apprise destination."""
        self.notifications.labels(kind=kind, result="ok" if ok else "failed").inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
