"""Wire: prepared API requests sent straight to an httpx transport, as httpx.Client would send them."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from service import logs
from service.aicore.client import USER_AGENT, api_headers, build_client
from service.aicore.wire import Wire
from service.config import RetryConfig
from service.errors import Unavailable
from tests.integration.aicore.conftest import PLAIN, Rig, config_json

Seen = list[tuple[str, str, list[tuple[str, str]], bytes]]  # method, path, headers (lowercased names), body


class _Recorder(BaseHTTPRequestHandler):
    """Answers 202 to anything and records the request line, headers and body."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    seen: Seen

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.command, self.path, [(k.lower(), v) for k, v in self.headers.items()], body))
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def recorder() -> Iterator[tuple[str, Seen]]:
    """A local HTTP/1.1 server recording what it receives; yields its base URL and the record."""
    seen: Seen = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def _wire(transport: httpx.BaseTransport, *, timeout: float = 2.0) -> tuple[Wire, httpx.Client]:
    http = httpx.Client(transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT})
    return Wire(transport=transport, timeout=httpx.Timeout(timeout), headers=api_headers(http)), http


def test_the_server_receives_what_httpx_client_sent(recorder: tuple[str, Seen]) -> None:
    """A PATCH and a GET through Wire reach the server with the same line, headers and body as through the Client."""
    base, seen = recorder
    transport = httpx.HTTPTransport(verify=PLAIN)
    wire, http = _wire(transport)
    body = b'{"data": {".dockerconfigjson": "{}"}}'
    auth = [(b"Authorization", b"Bearer tok")]
    with http:
        url = f"{base}/v2/admin/dockerRegistrySecrets/my-registry"
        patch_type = {"Content-Type": "application/merge-patch+json"}
        http.request(
            "PATCH",
            url,
            content=body,
            headers={"Authorization": "Bearer tok", "Accept": "application/json"} | patch_type,
        )
        wire.send(
            "PATCH", httpx.URL(url), headers=[*auth, (b"Content-Type", b"application/merge-patch+json")], content=body
        )
        query = f"{base}/v2/admin/dockerRegistrySecrets"
        params = {"$top": "50", "$skip": "0", "$count": "true"}
        http.request("GET", query, params=params, headers={"Authorization": "Bearer tok", "Accept": "application/json"})
        wire.send("GET", httpx.URL(query, params=params), headers=auth)
    client_patch, wire_patch, client_get, wire_get = seen
    for by_client, by_wire in ((client_patch, wire_patch), (client_get, wire_get)):
        assert by_wire[:2] == by_client[:2]
        assert sorted(by_wire[2]) == sorted(by_client[2])
        assert by_wire[3] == by_client[3]
    assert ("user-agent", USER_AGENT) in wire_patch[2]
    assert ("content-length", str(len(body))) in wire_patch[2]
    assert not any(name == "content-length" for name, _ in wire_get[2])


def test_responses_come_back_read_and_closed_over_one_connection(rig: Rig) -> None:
    """Ten GETs on one keep-alive connection; each response is read (content available) and closed."""
    wire, http = _wire(httpx.HTTPTransport(verify=PLAIN))
    token = rig.tokens(rig.key(), rig.http()).token()
    before = rig.emulator.inspect.connection_count()
    url = httpx.URL(rig.key().api_url.removesuffix("/v2") + "/v2/admin/resourceQuota/dockerRegistrySecrets")
    with http:
        for _ in range(10):
            response = wire.send("GET", url, headers=[(b"Authorization", f"Bearer {token}".encode())])
            assert response.status_code == 200
            assert response.is_closed
            assert "quota" in response.json()
    assert rig.emulator.inspect.connection_count() - before == 1


def test_the_timeout_travels_with_the_request(rig: Rig) -> None:
    """A server slower than the configured timeout ends in httpx.ReadTimeout; the extension carries all four."""
    rig.emulator.latency = 0.5
    seen: list[dict[str, float]] = []
    real = httpx.HTTPTransport(verify=PLAIN)

    class Watching(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.extensions["timeout"])
            return real.handle_request(request)

    wire, http = _wire(Watching(), timeout=0.1)
    with http, pytest.raises(httpx.ReadTimeout):
        wire.send(
            "GET", httpx.URL(rig.key().api_url.removesuffix("/v2") + "/v2/admin/dockerRegistrySecrets"), headers=[]
        )
    assert seen == [{"connect": 0.1, "read": 0.1, "write": 0.1, "pool": 0.1}]
    real.close()


def test_build_client_honours_the_environment_proxy(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY to a dead port makes calls fail, as through httpx.Client; NO_PROXY for the host lets them pass."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    refused = build_client(
        target="tenant-a", key=rig.key(), timeout=2.0, retry=RetryConfig(attempts=1), max_connections=1
    )
    with pytest.raises(Unavailable):
        refused.edit("my-registry", config_json())
    refused.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = build_client(
        target="tenant-a", key=rig.key(), timeout=2.0, retry=RetryConfig(attempts=1), max_connections=1
    )
    try:
        assert direct.edit("my-registry", config_json()).status == 202
    finally:
        direct.close()


def test_build_client_takes_the_proxies_read_once(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker reads the environment's proxies once and hands them in: those decide, not a later environment."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    refused = build_client(
        target="tenant-a",
        key=rig.key(),
        timeout=2.0,
        retry=RetryConfig(attempts=1),
        max_connections=1,
        proxies={"http": "http://127.0.0.1:9"},  # discard port: nothing listens
    )
    try:
        with pytest.raises(Unavailable):
            refused.edit("my-registry", config_json())
    finally:
        refused.close()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    direct = build_client(
        target="tenant-a", key=rig.key(), timeout=2.0, retry=RetryConfig(attempts=1), max_connections=1, proxies={}
    )
    try:
        assert direct.edit("my-registry", config_json()).status == 202
    finally:
        direct.close()


def test_the_http_debug_line_is_written_only_at_debug(rig: Rig) -> None:
    """At level debug every exchange logs aicore.http (no value in it); at info it is skipped."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    lines: dict[str, list[dict[str, object]]] = {}
    try:
        for level in ("debug", "info"):
            out = io.StringIO()
            logs.configure(level, "json", stream=out)
            rig.client().edit("my-registry", config_json("pw-sentinel-77"))
            assert "pw-sentinel-77" not in out.getvalue()
            lines[level] = [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        logs.configure("info", "json", stream=io.StringIO())
    http = [line for line in lines["debug"] if line["event"] == "aicore.http"]
    assert [(line["method"], line["status"], line["secret"]) for line in http] == [("PATCH", 202, "my-registry")]
    assert not any(line["event"] == "aicore.http" for line in lines["info"])
