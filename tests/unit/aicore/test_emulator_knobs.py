"""The emulator's knobs (injected errors, stalls, latency) and its inspection interface."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from service.sandbox.aicore_emulator import AICoreEmulator, Write
from tests.unit.aicore.conftest import PLAIN, FakeClock, api_client

VALUE = json.dumps({"auths": {"registry.example.com": {"username": "robot", "password": "pw-1"}}})


def patch_body(value: str = VALUE) -> dict[str, Any]:
    return {"data": {".dockerconfigjson": value}}


def test_fail_next_answers_the_given_status_count_times(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """Two injected 503s, then normal answers; the error keeps the spec's shape."""
    emulator.fail_next("tenant-a", status=503, count=2)
    statuses = [api.get("/dockerRegistrySecrets").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_fail_next_with_retry_after(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """An injected 429 carries the Retry-After given, and the error body shape."""
    emulator.fail_next("tenant-a", status=429, retry_after=7)
    response = api.get("/dockerRegistrySecrets")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert set(response.json()["error"]) >= {"code", "message", "requestId", "target"}


def test_fail_next_on_the_token_endpoint(key: dict[str, Any], emulator: AICoreEmulator) -> None:
    """endpoint="token" fails XSUAA instead of the API."""
    emulator.fail_next("tenant-a", status=500, endpoint="token")
    form = {"grant_type": "client_credentials", "client_id": key["clientid"], "client_secret": key["clientsecret"]}
    url = key["url"] + "/oauth/token"
    assert httpx.post(url, data=form, verify=PLAIN).status_code == 500
    assert httpx.post(url, data=form, verify=PLAIN).status_code == 200


def test_fail_next_is_per_tenant(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """A fault queued for another tenant does not touch this one."""
    emulator.add_tenant("tenant-b")
    emulator.fail_next("tenant-b", status=500)
    assert api.get("/dockerRegistrySecrets").status_code == 200


def test_fail_next_refuses_non_error_statuses(emulator: AICoreEmulator, key: dict[str, Any]) -> None:
    """Only 4xx and 5xx can be injected."""
    with pytest.raises(ValueError, match="4xx or 5xx"):
        emulator.fail_next("tenant-a", status=202)


def test_stalled_request_times_the_client_out_and_still_applies(key: dict[str, Any], emulator: AICoreEmulator) -> None:
    """stall_next holds a PATCH past the client's timeout; the server applies it afterwards."""
    emulator.inspect.seed("tenant-a", "my-registry", "{}")
    emulator.stall_next("tenant-a", seconds=0.4)
    with api_client(key) as api:
        api.timeout = httpx.Timeout(0.1)
        with pytest.raises(httpx.ReadTimeout):
            api.patch("/dockerRegistrySecrets/my-registry", json=patch_body())
        deadline = time.monotonic() + 5
        while emulator.inspect.stored("tenant-a", "my-registry") != VALUE and time.monotonic() < deadline:
            time.sleep(0.02)
        assert emulator.inspect.stored("tenant-a", "my-registry") == VALUE
        assert api.get("/dockerRegistrySecrets").status_code == 200  # the stall was used up


def test_latency_delays_every_request(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """latency is slept per request."""
    emulator.latency = 0.15
    started = time.perf_counter()
    api.get("/dockerRegistrySecrets")
    assert time.perf_counter() - started >= 0.15


def test_latency_holds_no_global_lock_across_100_keep_alive_connections(
    key: dict[str, Any], emulator: AICoreEmulator
) -> None:
    """100 clients on their own keep-alive connections, 0.3 s latency each: served concurrently."""
    clients = [api_client(key) for _ in range(100)]
    emulator.latency = 0.3
    barrier = threading.Barrier(100)
    statuses: list[int] = []

    def call(client: httpx.Client) -> None:
        barrier.wait()
        statuses.append(client.get("/dockerRegistrySecrets").status_code)

    threads = [threading.Thread(target=call, args=(client,)) for client in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    assert statuses == [200] * 100
    assert elapsed < 5.0  # serial would take 30 s
    assert emulator.inspect.peak_in_flight() >= 50


def test_keep_alive_reuses_one_connection(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """Twenty calls from one client share its connection."""
    before = emulator.inspect.connection_count()
    for _ in range(20):
        api.get("/dockerRegistrySecrets")
    assert emulator.inspect.connection_count() - before <= 1


def test_writes_record_method_name_and_time_not_value(
    api: httpx.Client, emulator: AICoreEmulator, clock: FakeClock
) -> None:
    """inspect.writes lists accepted writes with the emulator's time, never the value."""
    api.post("/dockerRegistrySecrets", json={"name": "my-registry", **patch_body()})
    clock.advance(5)
    api.patch("/dockerRegistrySecrets/my-registry", json=patch_body())
    api.patch("/dockerRegistrySecrets/unknown-name", json=patch_body())  # 404: not a write
    api.delete("/dockerRegistrySecrets/my-registry")
    assert emulator.inspect.writes("tenant-a") == [
        Write(clock.now - 5, "POST", "my-registry"),
        Write(clock.now, "PATCH", "my-registry"),
        Write(clock.now, "DELETE", "my-registry"),
    ]
    assert "pw-1" not in repr(emulator.inspect.writes("tenant-a"))


def test_request_count_by_tenant_method_and_endpoint(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """Requests are counted per tenant, method and endpoint (token, secrets, secret, quota)."""
    api.get("/dockerRegistrySecrets")
    api.get("/dockerRegistrySecrets/some-name")
    api.get("/resourceQuota/dockerRegistrySecrets")
    count = emulator.inspect.request_count
    assert count("tenant-a", endpoint="token") == 1
    assert count("tenant-a", method="GET") == 3
    assert count("tenant-a", endpoint="secret") == 1
    assert count("tenant-b") == 0
    assert count() == 4


def test_seed_stores_without_a_write(emulator: AICoreEmulator, key: dict[str, Any]) -> None:
    """Seeded secrets exist for the API but are not recorded as writes."""
    emulator.inspect.seed("tenant-a", "seeded-one", VALUE)
    with api_client(key) as api:
        assert api.get("/dockerRegistrySecrets/seeded-one").status_code == 200
    assert emulator.inspect.writes("tenant-a") == []
    assert emulator.inspect.names("tenant-a") == ["seeded-one"]


def test_stop_closes_idle_keep_alive_connections(key: dict[str, Any]) -> None:
    """stop() returns promptly with a client still holding an idle connection, and the port stops answering."""
    emulator = AICoreEmulator()
    emulator.start()
    tenant = emulator.add_tenant("t1")
    with api_client(tenant) as api:
        assert api.get("/dockerRegistrySecrets").status_code == 200
        started = time.perf_counter()
        emulator.stop()
        assert time.perf_counter() - started < 2
        with pytest.raises(httpx.TransportError):
            api.get("/dockerRegistrySecrets")


def test_tenant_names_must_be_url_safe(emulator: AICoreEmulator) -> None:
    """Tenant names end up in URLs: letters, digits, '.', '_' and '-' only."""
    with pytest.raises(ValueError, match="tenant names"):
        emulator.add_tenant("a/b")
    emulator.add_tenant("ok-name")
    with pytest.raises(ValueError, match="exists already"):
        emulator.add_tenant("ok-name")
