"""Process hardening: no core dumps from any command."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PROBE = """
import resource, sys
from service.cli import main
code = main(sys.argv[1:])
print(resource.getrlimit(resource.RLIMIT_CORE), code)
"""


def allow_core_dumps() -> None:
    """In the child before exec: raise the soft limit to the hard one, so the test can fail."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def test_every_command_starts_with_core_dumps_off(tmp_path: Path) -> None:
    """A command run by the CLI has a soft RLIMIT_CORE of 0, although its parent allowed core dumps."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    assert hard != 0, "this shell's hard limit is already 0: the child could not show the change"
    config = tmp_path / "rotator.toml"
    config.write_text("")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "db", "grants"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "ROTATOR_CONFIG": str(config)},
        preexec_fn=allow_core_dumps,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{(0, hard)} 0"


CHILD = "import resource; print(resource.getrlimit(resource.RLIMIT_CORE)[0])"

PARENT = """
import resource, subprocess, sys
from service.hardening import disable_core_dumps
_, hard = resource.getrlimit(resource.RLIMIT_CORE)
resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
assert disable_core_dumps()
print(subprocess.run([sys.executable, "-c", sys.argv[1]], capture_output=True, text=True).stdout.strip())
"""


def test_a_child_process_inherits_the_limit() -> None:
    """A process started after disable_core_dumps (e.g. a sandbox server) cannot dump core either."""
    result = subprocess.run(
        [sys.executable, "-c", PARENT, CHILD],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert result.stdout.strip() == "0"
