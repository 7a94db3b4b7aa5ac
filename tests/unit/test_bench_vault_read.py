"""bench/vault_read.py's arithmetic: medians and ranges per (threads, HTTP path), and the change against requests."""

from __future__ import annotations

from typing import Any

import pytest

from bench.vault_read import summary


def sample(path: str, threads: int, cpu_us: float) -> dict[str, Any]:
    return {"path": path, "threads": threads, "cpu_us_per_read": cpu_us, "wall_s": 1.0}


def test_summary_takes_medians_per_path_and_threads() -> None:
    """Three rounds each: the median, the range, and urllib3's change against requests on the urllib3 row."""
    samples = [
        *(sample("requests", 1, cpu) for cpu in (900.0, 1000.0, 1300.0)),
        *(sample("urllib3", 1, cpu) for cpu in (450.0, 500.0, 700.0)),
        *(sample("requests", 16, cpu) for cpu in (800.0, 800.0, 800.0)),
        *(sample("urllib3", 16, cpu) for cpu in (600.0, 600.0, 600.0)),
    ]
    rows = summary(samples)
    assert [(row["threads"], row["path"], row["median_us"]) for row in rows] == [
        (1, "requests", 1000.0),
        (1, "urllib3", 500.0),
        (16, "requests", 800.0),
        (16, "urllib3", 600.0),
    ]
    assert (rows[0]["low_us"], rows[0]["high_us"]) == (900.0, 1300.0)
    assert rows[1]["change"] == pytest.approx(-0.5)
    assert rows[3]["change"] == pytest.approx(-0.25)
    assert "change" not in rows[0]
