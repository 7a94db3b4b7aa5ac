"""`python -m bench.sweep --quick` runs end to end against its own servers and reports a healthy run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_runs_and_writes_its_json(tmp_path: Path) -> None:
    """The quick run exits 0, prints its table and writes JSON in which every sweep did what it should."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")} | {"PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "bench.sweep", "--quick", "--force", "--jobs", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CPU ms/rot" in done.stdout
    [path] = tmp_path.glob("sweep-*.json")
    results = json.loads(path.read_text())
    labels = [sweep["label"][:3] for sweep in results["sweeps"]]
    assert labels == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    assert [sweep["emulator"]["patch"] for sweep in results["sweeps"]] == [40, 0, 40, 40, 40]
    assert results["chain_verified"] is True
