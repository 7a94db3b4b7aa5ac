"""The stale flag of a pair follows every change, however often the health job reports it."""

from __future__ import annotations

from service.metrics import Metrics


def stale_value(metrics: Metrics, target: str, secret: str) -> float | None:
    return metrics.registry.get_sample_value("rotator_secret_stale", {"target": target, "secret": secret})


def test_the_flag_follows_each_change_and_repeats_keep_it() -> None:
    """0, then 1 when it goes stale, 1 while reported stale again, 0 once fresh; pairs are independent."""
    metrics = Metrics()
    metrics.pair_stale(target="eu", secret="reg", stale=False)
    assert stale_value(metrics, "eu", "reg") == 0
    metrics.pair_stale(target="eu", secret="reg", stale=True)
    metrics.pair_stale(target="eu", secret="reg", stale=True)
    assert stale_value(metrics, "eu", "reg") == 1
    metrics.pair_stale(target="us", secret="reg", stale=False)
    assert stale_value(metrics, "us", "reg") == 0
    assert stale_value(metrics, "eu", "reg") == 1
    metrics.pair_stale(target="eu", secret="reg", stale=False)
    assert stale_value(metrics, "eu", "reg") == 0


def test_two_workers_in_one_process_keep_their_own_flags() -> None:
    """Each Metrics (its own registry) remembers only what it set itself."""
    first, second = Metrics(), Metrics()
    first.pair_stale(target="eu", secret="reg", stale=True)
    second.pair_stale(target="eu", secret="reg", stale=True)
    assert stale_value(second, "eu", "reg") == 1
