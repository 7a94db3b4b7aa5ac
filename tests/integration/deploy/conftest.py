"""Fixtures for the deployment files' behaviour: the compose seed script, run against a real Vault-compatible server."""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.sandbox.openbao import bao_binary
from tests.deploy_files import REPO

SEED_SCRIPT = REPO / "deploy" / "compose" / "seed-vault.sh"


@dataclass(frozen=True)
class SeedRun:
    """One run of the seed script: its exit code, output, and every argument list it gave the CLI."""

    returncode: int
    output: str
    cli_calls: list[str]


@pytest.fixture(scope="session")
def vault_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose `vault` is the bao CLI (same commands and flags), recording each call's arguments."""
    directory = tmp_path_factory.mktemp("vault-cli")
    shim = directory / "vault"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "$VAULT_CLI_CALLS"\nexec {shlex.quote(bao_binary())} "$@"\n')
    shim.chmod(0o755)
    return directory


@pytest.fixture
def run_seed(vault_cli: Path, tmp_path: Path) -> Callable[[dict[str, str]], SeedRun]:
    """Run deploy/compose/seed-vault.sh with /bin/sh, as the `seed` service does, with the given variables."""

    def run(variables: dict[str, str]) -> SeedRun:
        calls = tmp_path / f"calls-{secrets.token_hex(4)}.log"
        calls.touch()
        env = {
            "PATH": f"{vault_cli}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(tmp_path),
            "VAULT_CLI_CALLS": str(calls),
            **variables,
        }
        done = subprocess.run(
            ["/bin/sh", str(SEED_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return SeedRun(done.returncode, done.stdout + done.stderr, calls.read_text().splitlines())

    return run
