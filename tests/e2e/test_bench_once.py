"""`python -m bench.once --quick` runs the rotator processes end to end on a durable database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_once_benchmark_runs_and_writes_its_json(tmp_path: Path) -> None:
    """The quick run exits 0, prints its table and JSON in which every sweep did what it should, durably."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")} | {"PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "bench.once", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert "CPU ms/rotation" in done.stdout
    [path] = tmp_path.glob("once-*.json")
    results = json.loads(path.read_text())
    assert results["database"] | {"server": "embedded"} == {
        "fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "server": "embedded",
    }  # fmt: skip
    [run] = results["runs"]
    assert run["first"]["outcomes"] == {"applied": 40}
    assert run["first"]["patch"] == 40
    assert run["second"]["outcomes"] == {"unchanged": 40}
    assert run["second"]["patch"] == 0
    assert run["sequential"]["secrets"] == 40
    assert run["sequential"]["statuses"] == {"202": 40}
    assert run["idle"]["idle_s"] >= 3
    assert 0 <= run["idle"]["cpu_pct_of_core"] < 100
    assert run["idle"]["rss_mb"] > 0
    assert results["shared"]["outcomes"] == results["slow"]["outcomes"] == {"applied": 40}
