"""Prometheus metrics: the only module that imports prometheus_client.

Labels hold names (target, secret, outcome), never a value. Each ``Metrics`` has its own
registry, so tests and several workers in one process do not share counters.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterator
from datetime import datetime

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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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


class _Samples(Collector):
    """Labelled samples kept as one dict of label values -> value, exported as prometheus_client's own would be.

    prometheus_client keeps a child object (its own lock and value holder) per label set:
    with 5,000 pairs, each per-pair gauge held about 3 MB of children, and making a
    counter's child cost about 18 us where updating a dict costs one. Values change from
    several threads: one dict update each under a lock, and ``collect`` reads a copy.
    """

    _family: type[GaugeMetricFamily] | type[CounterMetricFamily]

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], *, registry: CollectorRegistry):
        self._name = name
        self._documentation = documentation
        self._labelnames = labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def get(self, labels: tuple[str, ...]) -> float | None:
        return self._values.get(labels)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        family = self._family(self._name, self._documentation, labels=self._labelnames)
        with self._lock:
            samples = list(self._values.items())
        for labels, value in samples:
            family.add_metric(labels, value)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield self._family(self._name, self._documentation, labels=self._labelnames)


class SampleGauge(_Samples):
    """A labelled gauge; a label set is absent until first set (as ``Gauge.labels()`` would make it)."""

    _family = GaugeMetricFamily

    def set(self, labels: tuple[str, ...], value: float) -> None:
        """The sample of ``labels`` (values in ``labelnames`` order) becomes ``value``."""
        with self._lock:
            self._values[labels] = float(value)


class SampleCounter(_Samples):
    """A labelled counter (exported as ``NAME_total``); a label set is absent until first counted."""

    _family = CounterMetricFamily

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to the sample of ``labels`` (values in ``labelnames`` order)."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount


PAIR = ("target", "secret")
NAN = math.nan  # a column's "not set"


class PairGauges(Collector):
    """The per-pair gauges as one table: a row per (target, secret), a column (an exported gauge) per field.

    Exported as one labelled gauge per column would be (``SampleGauge``); a pair's sample in a
    column is absent until it is first set. Six gauges kept as six dicts held, per pair, six
    dict entries, six floats and a second label tuple (the health pass's). Here a pair is a
    dict entry (its row number) and a slot in each column, an ``array`` of doubles with NaN
    for "not set": no Python object per sample (docs/performance.md, tenth round).
    """

    def __init__(self, columns: tuple[tuple[str, str], ...], *, registry: CollectorRegistry) -> None:
        self._columns = columns  # (name, documentation)
        self._rows: dict[tuple[str, str], int] = {}
        self._values = [array("d") for _ in columns]
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, pair: tuple[str, str], column: int, value: float) -> None:
        """The pair's sample in ``column`` (its position in ``columns``) becomes ``value`` (not NaN)."""
        with self._lock:
            row = self._rows.get(pair)
            if row is None:
                row = self._rows[pair] = len(self._rows)
                for values in self._values:
                    values.append(NAN)
            self._values[column][row] = value

    def get(self, pair: tuple[str, str], column: int) -> float | None:
        with self._lock:
            row = self._rows.get(pair)
            value = NAN if row is None else self._values[column][row]
        return None if math.isnan(value) else value

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            rows = list(self._rows.items())
            columns = [array("d", values) for values in self._values]
        for values, (name, documentation) in zip(columns, self._columns, strict=True):
            family = GaugeMetricFamily(name, documentation, labels=PAIR)
            for pair, row in rows:
                value = values[row]
                if not math.isnan(value):
                    family.add_metric(pair, value)
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation in self._columns:
            yield GaugeMetricFamily(name, documentation, labels=PAIR)


LAST_SUCCESS, LAST_ATTEMPT, SYNCED, VERIFICATION_OK, PAUSED, STALE = range(6)
PAIR_COLUMNS = (  # in the order of the constants above
    (
        "rotator_last_success_timestamp_seconds",
        "When the secret was last confirmed up to date (written or unchanged).",
    ),
    ("rotator_last_attempt_timestamp_seconds", "When a rotation was last attempted."),
    (
        "rotator_secret_synced",
        "1 if the pair's last rotation left it up to date (applied or unchanged), 0 if it failed.",
    ),
    ("rotator_verification_ok", "1 if the registry accepted the secret's credential at the last check, else 0."),
    ("rotator_paused", "1 while an operator's pause (`rotator pause`) holds the pair, else 0; set at each sweep."),
    (
        "rotator_secret_stale",
        "1 if the pair's last success is older than its schedule allows (period + misfire grace), else 0.",
    ),
)


class Metrics:
    """Every metric the worker exports, with small methods that keep label use consistent."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rotations = SampleCounter(
            "rotator_rotations", "Rotations by outcome.", ("target", "secret", "outcome"), registry=r
        )
        self.duration = Histogram(
            "rotator_rotation_duration_seconds", "Duration of one rotation.", buckets=DURATION_BUCKETS, registry=r
        )
        self.pairs = PairGauges(PAIR_COLUMNS, registry=r)
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
        self.audit_write_failures = Counter("rotator_audit_write_failures", "Audit appends that failed.", registry=r)
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
        self.rotations.inc((target, secret, outcome))
        self.duration.observe(seconds)
        if outcome == "skipped":
            return
        pair, pairs = (target, secret), self.pairs
        pairs.set(pair, PAUSED, 1.0 if outcome == "paused" else 0.0)
        if outcome == "paused":
            return
        moment = at.timestamp()
        pairs.set(pair, LAST_ATTEMPT, moment)
        if success:
            pairs.set(pair, LAST_SUCCESS, moment)
        if verification not in (None, "skipped"):
            pairs.set(pair, VERIFICATION_OK, 1.0 if verification == "ok" else 0.0)
        if outcome in SYNCED_OUTCOMES or outcome in UNSYNCED_OUTCOMES:
            pairs.set(pair, SYNCED, 1.0 if outcome in SYNCED_OUTCOMES else 0.0)

    def pair_stale(self, *, target: str, secret: str, stale: bool) -> None:
        """1 while the pair's last success is older than its schedule allows, else 0."""
        self.pairs.set((target, secret), STALE, 1.0 if stale else 0.0)

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
