"""`rotator demo --short`: the README's first command tells its whole story and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_its_story_in_short_mode() -> None:
    """Every step happens: rotations, a new version, a refusal, a clean stop, matching fingerprints, a sound chain."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "VAULT_", "BAO_"))}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "service", "demo", "--short"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "demo finished: every step happened as described" in out
    assert out.count("matches the last applied fingerprint") == 4
    assert "rejected" in out
    assert "worker exited with code 0" in out
    assert "ok: " in out
    assert "rows checked" in out
    assert "Traceback" not in out + result.stderr
