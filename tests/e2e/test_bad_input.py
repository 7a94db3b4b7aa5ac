"""`rotator run` refuses bad surroundings clearly: one line saying what is wrong, the right exit code."""

from __future__ import annotations

import time

from service.sandbox.processes import free_port
from tests.e2e.scene import Scene

PROMPTLY = 15.0  # seconds; a refusal at start-up needs no retries


def test_run_on_an_unmigrated_database_exits_2_naming_db_upgrade(bare_scene: Scene) -> None:
    """No schema yet: exit 2 with one line that says to run `rotator db upgrade`, and no traceback."""
    bare_scene.add_tenant("tenant-a")
    bare_scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    started = time.monotonic()
    result = bare_scene.rotator("run", expect=2)
    assert time.monotonic() - started < PROMPTLY
    assert len(result.plain_stderr) == 1, result.plain_stderr
    [line] = result.plain_stderr
    assert line.startswith("error: database is at no revision (no schema yet), head is ")
    assert "rotator db upgrade" in line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert bare_scene.emulator.inspect.request_count() == 0


def test_run_with_vault_unreachable_at_start_exits_3_with_one_clear_line(scene: Scene) -> None:
    """Nothing listens at the Vault address: exit 3, one line naming Vault and the address, no traceback."""
    address = f"http://127.0.0.1:{free_port()}"
    scene.set("vault", address=address)
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    started = time.monotonic()
    result = scene.rotator("run", expect=3)
    assert time.monotonic() - started < PROMPTLY
    assert len(result.plain_stderr) == 1, result.plain_stderr
    [line] = result.plain_stderr
    assert line.startswith("error: ")
    assert "Vault" in line or "vault" in line
    assert address.removeprefix("http://") in line
    assert "Traceback" not in result.stderr
    assert scene.audit_rows() == []
    assert scene.emulator.inspect.request_count() == 0
