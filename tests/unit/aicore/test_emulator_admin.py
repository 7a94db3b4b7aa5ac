"""The emulator's standing fault rules, its request log, its admin door and the knobs as CLI flags."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.errors import ConfigError
from service.sandbox.aicore_emulator import AICoreEmulator
from service.sandbox.aicore_emulator.process import knobs_from
from tests.unit.aicore.conftest import PLAIN, api_client

ROOT = Path(__file__).resolve().parents[3]
VALUE = json.dumps({"auths": {"registry.example.com": {"username": "robot", "password": "pw-admin-1"}}})


def admin(emulator: AICoreEmulator, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.request(method, f"{emulator.url}/_emulator/{path}", json=body, timeout=5, verify=PLAIN)


def test_fail_every_makes_bursts_between_normal_answers(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """fail_every(every=2, burst=2): two requests fail, two pass, and so on; the Retry-After is sent."""
    emulator.fail_every(status=503, every=2, burst=2, retry_after=1)
    responses = [api.get("/dockerRegistrySecrets") for _ in range(6)]
    assert [r.status_code for r in responses] == [503, 503, 200, 200, 503, 503]
    assert responses[0].headers["retry-after"] == "1"
    emulator.periodic_fault = None
    assert api.get("/dockerRegistrySecrets").status_code == 200


def test_stall_every_holds_only_the_method_named(key: dict[str, Any], emulator: AICoreEmulator) -> None:
    """A PATCH-only stall leaves GETs alone and still applies the held PATCH after the client gave up."""
    emulator.inspect.seed("tenant-a", "my-registry", "{}")
    emulator.stall_every(seconds=0.5, every=1, method="PATCH")
    with api_client(key) as api:
        api.timeout = httpx.Timeout(0.2)
        assert api.get("/dockerRegistrySecrets/my-registry").status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            api.patch("/dockerRegistrySecrets/my-registry", json={"data": {".dockerconfigjson": VALUE}})
    deadline = time.monotonic() + 5
    while emulator.inspect.stored("tenant-a", "my-registry") != VALUE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.inspect.stored("tenant-a", "my-registry") == VALUE


def test_request_log_keeps_a_hash_of_the_body_never_the_value(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """Each answered request is logged with method, path, tenant, status and times; the body only as SHA-256."""
    emulator.inspect.seed("tenant-a", "my-registry", "{}")
    body = json.dumps({"data": {".dockerconfigjson": VALUE}}).encode()
    before = time.time()
    response = api.patch(
        "/dockerRegistrySecrets/my-registry", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 202
    patch = [r for r in emulator.inspect.requests() if r.method == "PATCH"]
    assert len(patch) == 1
    record = patch[0]
    assert (record.tenant, record.endpoint, record.name, record.status) == ("tenant-a", "secret", "my-registry", 202)
    assert record.body_sha256 == hashlib.sha256(body).hexdigest()
    assert before <= record.at <= record.done <= time.time()
    assert "pw-admin-1" not in json.dumps([r.as_json() for r in emulator.inspect.requests()])
    assert next(r.endpoint for r in emulator.inspect.requests()) == "token"


def test_admin_door_adds_tenants_and_turns_knobs(emulator: AICoreEmulator) -> None:
    """Over HTTP: add a tenant (its key back), seed, read, delete out of band, queue a fault, read the log."""
    key = admin(emulator, "POST", "tenants", {"name": "remote", "editor": True}).json()
    assert key["serviceurls"]["AI_API_URL"].endswith("/api/remote")
    assert admin(emulator, "PUT", "tenants/remote/secrets/pull", {"value": VALUE}).status_code == 200
    assert admin(emulator, "GET", "tenants/remote/secrets/pull").json() == {"value": VALUE}
    assert admin(emulator, "POST", "tenants/remote/faults", {"status": 404, "count": 1}).status_code == 200
    with api_client(key) as api:
        assert api.get("/dockerRegistrySecrets/pull").status_code == 404
        assert api.get("/dockerRegistrySecrets/pull").status_code == 200
        assert admin(emulator, "DELETE", "tenants/remote/secrets/pull").json() == {"deleted": True}
        assert api.get("/dockerRegistrySecrets/pull").status_code == 404
    logged = admin(emulator, "GET", "requests?since=1").json()["requests"]
    assert [r["status"] for r in logged] == [404, 200, 404]
    assert not any(r["path"].startswith("/_emulator") for r in logged)
    assert admin(emulator, "GET", "tenants/remote/writes").json() == {"writes": []}


def test_admin_door_sets_standing_rules_and_refuses_nonsense(emulator: AICoreEmulator) -> None:
    """POST knobs sets and clears the periodic rules; bad values answer 400 naming the field."""
    state = admin(emulator, "POST", "knobs", {"fail": {"status": 429, "every": 3, "retry_after": 2}}).json()
    assert state["fail"] == {"status": 429, "every": 3, "burst": 1}
    assert emulator.periodic_fault is not None
    admin(emulator, "POST", "knobs", {"fail": None, "token_ttl": 5, "latency_ms": 10})
    assert (emulator.periodic_fault, emulator.token_ttl, emulator.latency) == (None, 5, 0.01)
    refused = admin(emulator, "POST", "knobs", {"stall": {"seconds": "long"}})
    assert refused.status_code == 400
    assert "seconds" in refused.json()["error"]
    assert admin(emulator, "GET", "tenants/nobody/key").status_code == 404


def test_the_v2_api_does_not_know_the_admin_paths(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """Below /api/<tenant> an _emulator path is an ordinary unknown resource (the API stays SAP's)."""
    response = api.get("/_emulator/state")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_knob_flags_out_of_range_are_refused_naming_the_flag() -> None:
    """knobs_from refuses a non-error status and a zero interval, naming each flag."""
    with pytest.raises(ConfigError) as refused:
        knobs_from(latency_ms=0, token_ttl=60, fail=(200, 0, 1, None), stall=(None, 1, "PATCH"), request_log=None)
    assert "--fail-status" in str(refused.value)
    assert "--fail-every" in str(refused.value)


def test_emulator_command_takes_the_knobs_as_flags(tmp_path: Path) -> None:
    """`rotator emulator aicore --token-ttl --fail-status --fail-every --request-log` starts with those knobs."""
    log_file = tmp_path / "requests.jsonl"
    command = [sys.executable, "-m", "service", "emulator", "aicore", "--port", "0", "--token-ttl", "7"]
    command += ["--fail-status", "503", "--fail-every", "1", "--retry-after", "1", "--request-log", str(log_file)]
    command += ["--stall-seconds", "0", "--service-key-dir", str(tmp_path / "keys")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        state = httpx.get(ready["admin"] + "state", timeout=5).json()
        assert state["token_ttl"] == 7
        assert state["fail"] == {"status": 503, "every": 1, "burst": 1}
        key = json.loads((tmp_path / "keys" / "tenant-a.json").read_text())
        with api_client(key) as api:
            assert [api.get("/dockerRegistrySecrets").status_code for _ in range(3)] == [503, 200, 503]
        logged = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert [(r["endpoint"], r["status"]) for r in logged] == [("token", 200)] + [
            ("secrets", status) for status in (503, 200, 503)
        ]
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_emulator_command_refuses_a_bad_flag_in_one_line() -> None:
    """A 4xx/5xx is required of --fail-status: exit 2 and one line naming the flag, no traceback."""
    command = [sys.executable, "-m", "service", "emulator", "aicore", "--port", "0", "--fail-status", "200"]
    result = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "--fail-status" in result.stderr
    assert "Traceback" not in result.stderr


def test_request_log_keeps_the_newest_entries_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond its limit the log drops the oldest entries and keeps numbering on."""
    from service.sandbox.aicore_emulator import state

    monkeypatch.setattr(state, "REQUEST_LOG_LIMIT", 3)
    with AICoreEmulator() as emulator:
        key = emulator.add_tenant("tenant-a")
        with api_client(key) as api:
            for _ in range(4):
                api.get("/dockerRegistrySecrets")
        assert [r.number for r in emulator.inspect.requests()] == [3, 4, 5]
        assert [r.number for r in emulator.inspect.requests(since=4)] == [5]
