"""SampleGauge: per-pair gauges kept as one dict, exported exactly as prometheus_client's labelled Gauge."""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from service.metrics import PAIR, SampleGauge

VALUES = [
    (("eu", "reg"), 1.0),
    (("us", 'we"ird\\name\n'), 0.0),  # escaped the same way
    (("ap", "reg"), 1764637323.5),
    (("eu", "reg"), 0.0),  # set again: the last value counts
]


def test_the_exposition_is_byte_for_byte_a_labelled_gauges() -> None:
    """Same HELP, TYPE, label order, escaping, value format and sample order as ``Gauge(...).labels().set()``."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    sample = SampleGauge("rotator_x", "Some doc.", PAIR, registry=ours)
    gauge = Gauge("rotator_x", "Some doc.", list(PAIR), registry=theirs)
    assert generate_latest(ours) == generate_latest(theirs)  # nothing set: HELP and TYPE only
    for labels, value in VALUES:
        sample.set(labels, value)
        gauge.labels(*labels).set(value)
    assert generate_latest(ours) == generate_latest(theirs)
    assert ours.get_sample_value("rotator_x", {"target": "ap", "secret": "reg"}) == 1764637323.5
    assert sample.get(("eu", "reg")) == 0.0


def test_setting_from_threads_while_scraping_loses_nothing() -> None:
    """Four threads set 2,000 label sets each while the registry is collected: every sample is there at the end."""
    registry = CollectorRegistry()
    sample = SampleGauge("rotator_y", "Doc.", PAIR, registry=registry)
    fill_while_scraping(registry, lambda thread, i: sample.set((f"t{thread}", f"s{i}"), i))
    assert generate_latest(registry).count(b"\nrotator_y{") == 8000


def fill_while_scraping(registry: CollectorRegistry, set_one: Callable[[int, int], None]) -> None:
    """``set_one(thread, i)`` for i in 0..1999 from each of four threads, while ``registry`` is collected."""

    def fill(thread: int) -> None:
        for i in range(2000):
            set_one(thread, i)

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        generate_latest(registry)
    for thread in threads:
        thread.join()


def test_pair_gauges_export_each_column_as_a_labelled_gauge() -> None:
    """Every column of the table reads, byte for byte, as the labelled Gauge it replaces (same sets, same order)."""
    from service.metrics import PairGauges

    columns = (("rotator_a", "Doc a."), ("rotator_b", "Doc b."))
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    table = PairGauges(columns, registry=ours)
    gauges = [Gauge(name, doc, list(PAIR), registry=theirs) for name, doc in columns]
    assert generate_latest(ours) == generate_latest(theirs)  # nothing set: HELP and TYPE only
    for labels, value in VALUES:
        for column, gauge in enumerate(gauges):
            table.set(labels, column, value + column)
            gauge.labels(*labels).set(value + column)
    table.set(("ap", "only-b"), 1, 2.0)  # a pair set in one column only is absent from the other
    gauges[1].labels("ap", "only-b").set(2.0)
    assert generate_latest(ours) == generate_latest(theirs)
    assert table.get(("eu", "reg"), 1) == 1.0
    assert table.get(("ap", "only-b"), 0) is None
    assert table.get(("nowhere", "x"), 0) is None


def test_pair_gauges_set_from_threads_while_scraping_lose_nothing() -> None:
    """Four threads add 2,000 pairs each (rows and columns grow) while the registry is collected: all are there."""
    from service.metrics import PairGauges

    registry = CollectorRegistry()
    table = PairGauges((("rotator_p", "Doc."), ("rotator_q", "Doc.")), registry=registry)
    fill_while_scraping(registry, lambda thread, i: table.set((f"t{thread}", f"s{i}"), i % 2, float(i)))
    text = generate_latest(registry)
    assert (text.count(b"\nrotator_p{"), text.count(b"\nrotator_q{")) == (4000, 4000)
    assert table.get(("t3", "s1999"), 1) == 1999.0
