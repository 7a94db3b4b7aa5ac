"""bench/engine.py: the child's two sweeps really run (and check their outcomes), and the medians per checkout."""

from __future__ import annotations

from bench.engine import child, summary


def test_the_child_sweeps_every_pair_written_then_unchanged() -> None:
    """A small world through the real engine over the fakes: a figure for each sweep (it raises on a wrong outcome)."""
    run = child(tenants=2, per_tenant=3, threads=4)
    assert set(run) == {"written_us", "unchanged_us"}
    assert all(value > 0 for value in run.values())


def test_summary_takes_the_median_of_each_part_per_checkout() -> None:
    rows = summary(
        {
            "before": [{"written_us": w, "unchanged_us": u} for w, u in ((300, 150), (280, 200), (310, 120))],
            "after": [{"written_us": 250.0, "unchanged_us": 100.0}],
        }
    )
    assert [(row["src"], row["written_median_us"], row["unchanged_median_us"]) for row in rows] == [
        ("before", 300, 150),
        ("after", 250.0, 100.0),
    ]
    assert rows[0]["unchanged_runs_us"] == [150, 200, 120]
