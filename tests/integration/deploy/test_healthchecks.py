"""The health checks of the image and of the compose services, run against the real servers they probe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import load_settings
from service.http import HealthServer, Probes
from service.sandbox.processes import free_port
from tests.deploy_files import (
    COMPOSE_CONFIG,
    DOCKERFILE,
    REPO,
    healthcheck_command,
    healthcheck_test,
    load_compose,
    parse_dockerfile,
    stages,
)

IMAGE_PORT = ":9464/"


def image_check_script(port: int) -> str:
    """The image's HEALTHCHECK program, pointed at ``port`` instead of the container's 9464."""
    check = stages(parse_dockerfile(DOCKERFILE.read_text()))[-1].last("HEALTHCHECK")
    assert check is not None
    argv = healthcheck_command(check.value)[1]
    assert argv is not None
    assert argv[:2] == ["python", "-c"]
    assert IMAGE_PORT in argv[2]
    return argv[2].replace(IMAGE_PORT, f":{port}/")


def run_python(script: str) -> int:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30, check=False).returncode


@pytest.fixture
def health_server() -> Iterator[tuple[HealthServer, list[bool]]]:
    """The worker's real probe server on a free loopback port; set ``alive[0]`` to answer /livez."""
    alive = [True]
    probes = Probes(
        live=lambda: alive[0],
        ready=lambda: {"database": "ok"},
        metrics=lambda: (b"", "text/plain"),
        status=list,
    )
    server = HealthServer(listen=f"127.0.0.1:{free_port()}", probes=probes)
    server.start()
    yield server, alive
    server.stop()


def test_image_check_passes_while_the_worker_is_alive(health_server: tuple[HealthServer, list[bool]]) -> None:
    """/livez answering 200 makes the image's health check exit 0."""
    server, _ = health_server
    port = int(server.address.rsplit(":", 1)[1])
    assert run_python(image_check_script(port)) == 0


def test_image_check_fails_when_the_scheduler_stopped(health_server: tuple[HealthServer, list[bool]]) -> None:
    """/livez answering 503 makes the image's health check exit non-zero."""
    server, alive = health_server
    alive[0] = False
    port = int(server.address.rsplit(":", 1)[1])
    assert run_python(image_check_script(port)) != 0


def test_image_check_fails_when_nothing_listens() -> None:
    """No server on the probe port: the health check exits non-zero instead of hanging."""
    assert run_python(image_check_script(free_port())) != 0


# --- the AI Core emulator service ---------------------------------------------------


def compose_emulator_argv(*, port: int, key_dir: Path) -> list[str]:
    """The compose `aicore` command, with a loopback host, a free port and a temporary key directory."""
    command = list(load_compose()["services"]["aicore"]["command"])
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port)), ("--service-key-dir", str(key_dir))):
        command[command.index(flag) + 1] = value
    return [sys.executable, "-m", "service", *command]


def emulator_check_script(key_dir: Path) -> str:
    """The compose `aicore` health check program, reading keys from ``key_dir``."""
    spec = load_compose()["services"]["aicore"]
    argv = healthcheck_test(spec)
    assert argv is not None
    assert argv[:2] == ["python", "-c"]
    command = spec["command"]
    compose_dir = command[command.index("--service-key-dir") + 1]
    assert compose_dir in argv[2]
    return argv[2].replace(compose_dir, str(key_dir))


@pytest.fixture(scope="module")
def emulator_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The emulator started as compose starts it; yields the directory of the service keys it wrote."""
    key_dir = tmp_path_factory.mktemp("service-keys")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        compose_emulator_argv(port=free_port(), key_dir=key_dir),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            ready = json.loads(process.stdout.readline())
            assert ready["event"] == "emulator.ready"
            yield key_dir
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0, "the emulator stops cleanly on SIGTERM"


def test_emulator_writes_a_key_for_each_compose_target(emulator_keys: Path) -> None:
    """The emulator's default tenants are exactly the targets of config/compose.toml, keys readable by owner only."""
    settings = load_settings(COMPOSE_CONFIG)
    written = {path.stem: path for path in emulator_keys.glob("*.json")}
    assert set(written) == set(settings.targets)
    for path in written.values():
        assert path.stat().st_mode & 0o077 == 0


def test_emulator_check_passes_with_the_keys_of_the_running_emulator(emulator_keys: Path) -> None:
    """Every key in the directory obtains a token from the emulator: the check exits 0."""
    assert run_python(emulator_check_script(emulator_keys)) == 0


def test_emulator_check_fails_on_keys_of_an_earlier_run(emulator_keys: Path, tmp_path: Path) -> None:
    """A key whose client secret the running emulator does not know (a stale volume) fails the check."""
    for path in emulator_keys.glob("*.json"):
        key = json.loads(path.read_text())
        if path.stem == "tenant-b":
            key["clientsecret"] = "from-an-earlier-run"
        (tmp_path / path.name).write_text(json.dumps(key))
    assert run_python(emulator_check_script(tmp_path)) != 0


def test_emulator_check_fails_before_any_key_is_written(tmp_path: Path) -> None:
    """An empty key directory (the emulator is still starting) fails the check."""
    assert run_python(emulator_check_script(tmp_path)) != 0
