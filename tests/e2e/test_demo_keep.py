"""`rotator demo --keep`: the world stays up for other commands until Ctrl-C, which stops it cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


STOP_TIMEOUT = 90  # seconds from Ctrl-C to the demo's exit


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "VAULT_", "BAO_"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def read_lines(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)


def wait_for(lines: queue.Queue[str], seen: list[str], marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(marker in line for line in seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no {marker!r} within {timeout}s:\n" + "".join(seen))
        try:
            seen.append(lines.get(timeout=min(1.0, remaining)))
        except queue.Empty:
            continue


@pytest.mark.slow
def test_keep_leaves_the_world_running_for_other_commands() -> None:
    """The printed environment lets `rotator status` and `audit verify` work; Ctrl-C exits 0 and removes the files."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "service", "demo", "--short", "--keep"],
        cwd=REPO,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(demo, lines), daemon=True).start()
    seen: list[str] = []
    try:
        wait_for(lines, seen, "Ctrl-C here stops everything", timeout=240)
        out = "".join(seen)
        assert "demo finished: every step happened as described" in out
        (config,) = re.findall(r"export ROTATOR_CONFIG=(\S+)", out)
        assert 'export BAO_TOKEN="$(cat ' in out, "the token is read from a file, never printed"
        env = clean_env() | {"ROTATOR_CONFIG": config}
        for argv in (["status"], ["audit", "verify"], ["once", "--dry-run", "--secret", "acme-registry"]):
            result = subprocess.run(
                [sys.executable, "-m", "service", *argv],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, f"rotator {' '.join(argv)}: {result.stdout}{result.stderr}"
            if argv == ["status"]:
                assert "acme-registry" in result.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        try:  # the demo gives its worker 30 s to stop on SIGTERM, then stops four servers
            code = demo.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
            while not lines.empty():
                seen.append(lines.get())
            assert demo.stdout is not None
            demo.stdout.close()
            tail = "".join(seen[-30:])
            raise AssertionError(f"demo still stopping after {STOP_TIMEOUT}s; its last output:\n{tail}") from None
        time.sleep(0.2)
        while not lines.empty():
            seen.append(lines.get())
        assert demo.stdout is not None
        demo.stdout.close()
    out = "".join(seen)
    assert code == 0, out
    assert "Traceback" not in out
    assert not Path(config).parent.exists(), "the demo's directory is removed"
