"""`rotator audit export --follow` as a process: a log shipper's feed that SIGTERM ends cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from service.audit.store import AuditStore
from tests.e2e.scene import REPO, Scene
from tests.integration.audit.conftest import make_event


def test_follow_tails_rows_and_stops_on_sigterm_with_its_cursor(scene: Scene) -> None:
    """The process writes existing rows, then new ones as they are appended; SIGTERM: exit 0 and the cursor line."""
    store = AuditStore(scene.engine)
    store.append([make_event(), make_event(secret="quay-pull")])
    scene.write_config()
    feed = scene.workdir / "feed.jsonl"
    command = scene.command("audit", "export", "--follow", "--poll", "0.2", "--after-seq", "1", "-o", str(feed))
    process = subprocess.Popen(
        command, env=scene.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_lines(feed, 1)
        store.append([make_event(secret="late-pull")])
        _wait_for_lines(feed, 2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    rows = [json.loads(line) for line in feed.read_text().splitlines()]
    assert process.returncode == 0, err
    assert [(row["seq"], row["secret"]) for row in rows] == [(2, "quay-pull"), (3, "late-pull")]
    assert err.strip().splitlines()[-1] == "exported 2 rows, last seq 3"


def _wait_for_lines(path: Path, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path} after {timeout}s")
