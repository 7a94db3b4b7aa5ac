"""The emulator as a process: ready line, service key files, tenants file, clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.aicore.servicekey import parse_service_key
from service.errors import ConfigError
from service.sandbox.aicore_emulator.process import load_tenants, serve
from tests.unit.aicore.conftest import PLAIN, api_client

ROOT = Path(__file__).resolve().parents[3]


def start(*args: str) -> subprocess.Popen[str]:
    """``serve(...)`` in a child process (the CLI wiring belongs to the lead)."""
    call = "import sys; from service.sandbox.aicore_emulator import serve; sys.exit(serve(**" + args[0] + "))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", call], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], Path]]:
    """A child emulator with a tenants file and a service key directory."""
    tenants = tmp_path / "tenants.json"
    value = json.dumps({"auths": {}})
    entries = [
        {"name": "alpha", "client_id": "alpha-client", "client_secret": "alpha-secret", "secrets": {"pre-made": value}},
        {"name": "beta", "editor": False, "quota": 3},
    ]
    tenants.write_text(json.dumps({"tenants": entries}))
    keys = tmp_path / "keys"
    options = {"host": "127.0.0.1", "port": 0, "tenants_file": str(tenants), "latency_ms": 0.0}
    options["service_key_dir"] = str(keys)
    process = start(repr(options))
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    yield process, ready, keys
    if process.poll() is None:
        process.kill()
        process.wait()
    process.communicate()


def test_process_prints_one_ready_line(running: tuple[subprocess.Popen[str], dict[str, Any], Path]) -> None:
    """The first stdout line is JSON naming the URL and the tenants."""
    _, ready, keys = running
    assert ready["event"] == "emulator.ready"
    assert ready["url"].startswith("http://127.0.0.1:")
    assert ready["tenants"] == ["alpha", "beta"]
    assert ready["service_key_dir"] == str(keys)


def test_process_writes_private_service_keys_that_work(
    running: tuple[subprocess.Popen[str], dict[str, Any], Path],
) -> None:
    """One <tenant>.json per tenant, mode 0600, parseable, and its credentials reach the API."""
    _, ready, keys = running
    for name in ("alpha", "beta"):
        path = keys / f"{name}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = parse_service_key(path.read_bytes())
        assert key.api_url == f"{ready['url']}/api/{name}"
    alpha = json.loads((keys / "alpha.json").read_text())
    assert alpha["clientsecret"] == "alpha-secret"
    with api_client(alpha) as api:
        assert api.get("/dockerRegistrySecrets").json() == {"count": 1, "resources": [{"name": "pre-made"}]}
    beta = json.loads((keys / "beta.json").read_text())
    with api_client(beta) as api:
        body = {"name": "new-secret", "data": {".dockerconfigjson": "{}"}}
        assert api.post("/dockerRegistrySecrets", json=body).status_code == 403
        assert api.get("/resourceQuota/dockerRegistrySecrets").json()["quota"] == {"maxCount": 3}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_stops_cleanly_on_a_signal(
    running: tuple[subprocess.Popen[str], dict[str, Any], Path], sig: signal.Signals
) -> None:
    """SIGTERM and SIGINT stop the server and exit 0; the port is released."""
    process, ready, _ = running
    process.send_signal(sig)
    assert process.wait(timeout=10) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(ready["url"] + "/api/alpha/v2/admin/dockerRegistrySecrets", verify=PLAIN, timeout=2)


def test_default_tenants_without_a_file() -> None:
    """No tenants file: tenant-a and tenant-b with random credentials."""
    options = {"host": "127.0.0.1", "port": 0, "tenants_file": None, "latency_ms": 0.0, "service_key_dir": None}
    process = start(repr(options))
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["tenants"] == ["tenant-a", "tenant-b"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_busy_port_returns_2() -> None:
    """A port already in use is a usage error (exit code 2), reported on stderr."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert serve(host="127.0.0.1", port=port, tenants_file=None, latency_ms=0, service_key_dir=None) == 2


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("not json", ""),
        ('{"tenants": []}', "tenants"),
        ('{"tenants": [{"client_id": "x"}]}', "tenants[0]"),
        ('{"tenants": [{"name": "a", "quota": "many"}]}', "tenants[0].quota"),
        ('{"tenants": [{"name": "a", "editor": 1}]}', "tenants[0].editor"),
        ('{"tenants": [{"name": "a", "colour": "red"}]}', "tenants[0].colour"),
        ('{"tenants": [{"name": "a"}, {"name": "a"}]}', "tenants"),
    ],
)
def test_tenants_file_problems_name_the_place(tmp_path: Path, content: str, where: str) -> None:
    """A broken tenants file raises ConfigError naming the file and the entry."""
    path = tmp_path / "tenants.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_tenants(path)
    assert str(path) in str(caught.value)
    assert where in str(caught.value)


def test_missing_tenants_file_is_a_config_error(tmp_path: Path) -> None:
    """A tenants file that does not exist is named."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_tenants(tmp_path / "absent.json")
