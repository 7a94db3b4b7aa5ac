"""HTTP side of the emulator: routing, the XSUAA token endpoint and the six secret endpoints.

One ``EmulatorServer`` per listener (plain HTTP for XSUAA and the API; optionally HTTPS
with client certificates for X.509 tenants' token requests). HTTP/1.1 keep-alive, one
thread per connection; latency and stalls are slept per request, holding no lock.
Every XSUAA and API request goes to the world's request log once answered. Paths below
``/_emulator/`` go to the admin door (``admin.py``), for loopback clients only, and are
not logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from service.logs import get_logger
from service.sandbox.aicore_emulator import rules
from service.sandbox.aicore_emulator.rules import Refusal
from service.sandbox.aicore_emulator.state import Fault, Seen, World

log = get_logger("rotator.emulator")

MAX_BODY = 1 << 20
SECRETS = ("v2", "admin", "dockerRegistrySecrets")
QUOTA = ("v2", "admin", "resourceQuota", "dockerRegistrySecrets")
FORM = "application/x-www-form-urlencoded"
ADMIN_PREFIX = "/_emulator/"
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


AdminDoor = Callable[[str, str, dict[str, list[str]], bytes], "Answer"]


class EmulatorServer(ThreadingHTTPServer):
    """A listener that knows the world, can be told to stop, and closes its idle connections on stop."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        *,
        world: World,
        stopping: threading.Event,
        tls: ssl.SSLContext | None,
        admin: AdminDoor | None = None,
    ) -> None:
        super().__init__(address, Handler)
        self.world = world
        self.admin = admin
        self.stopping = stopping
        self.mtls = tls is not None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.accepted = 0  # connections accepted since start
        if tls is not None:  # handshake in the connection's thread, not in the accept loop
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
            self.accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every connection thread blocked on an idle keep-alive socket."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):  # clients hanging up (OSError, ssl.SSLError) are normal
            log.warning("emulator.handler_failed", error=type(error).__name__)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections close after this
    # One segment per answer (headers and body are flushed together after each request)
    # and no Nagle delay: small answers otherwise wait ~40 ms for the peer's delayed ACK.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator logs nothing per request."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        request_id = str(uuid.uuid4())
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path.startswith(ADMIN_PREFIX) and self.server.admin is not None and not self.server.mtls:
            self._write(self._admin(url.path, query), request_id)
            return
        seen = Seen(at=time.time(), method=self.command, path=url.path, body_sha256=None)
        try:
            raw = self._read_body()
            seen.body_sha256 = hashlib.sha256(raw).hexdigest() if raw else None
            answer = self._answer(url.path, query, raw, seen)
        except Refusal as refusal:
            answer = Answer(refusal.status, _error_body(refusal, request_id, url.path), refusal.headers)
        if seen.tenant:
            self.server.world.log_request(seen, status=answer.status, request_id=request_id)
        self._write(answer, request_id)

    def _admin(self, path: str, query: dict[str, list[str]]) -> Answer:
        if self.client_address[0] not in LOOPBACK:
            return Answer(403, {"error": "the emulator's admin door answers loopback clients only"})
        assert self.server.admin is not None
        try:
            raw = self._read_body()
        except Refusal as refusal:
            return Answer(refusal.status, {"error": refusal.message})
        return self.server.admin(self.command, path[len(ADMIN_PREFIX) :], query, raw)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise Refusal(411, "LengthRequired", "send a Content-Length")
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True
            raise Refusal(413, "PayloadTooLarge", f"the body must be at most {MAX_BODY} bytes")
        return self.rfile.read(int(length)) if int(length) else b""

    def _write(self, answer: Answer, request_id: str) -> None:
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-Id", request_id)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    # --- routing ----------------------------------------------------------------

    def _answer(self, path: str, query: dict[str, list[str]], raw: bytes, seen: Seen) -> Answer:
        segments = [unquote(part) for part in path.split("/")[1:]]
        kind, tenant, rest = (segments[0], segments[1], tuple(segments[2:])) if len(segments) >= 2 else ("", "", ())
        world = self.server.world
        if kind not in ("uaa", "api") or not world.has_tenant(tenant):
            raise Refusal(404, "NotFound", "no such resource")
        seen.tenant = tenant
        endpoint, name = _route(kind, rest, mtls=self.server.mtls)
        seen.endpoint, seen.name = endpoint, name
        world.begin(tenant, self.command, endpoint)
        try:
            self._delay(tenant, endpoint)
            _raise_fault(world.take_fault(tenant, "token" if endpoint == "token" else "api"))
            if endpoint == "token":
                return self._token(tenant, raw)
            self._authorise(tenant)
            return self._api(tenant, endpoint, name, query, raw)
        finally:
            world.end()

    def _delay(self, tenant: str, endpoint: str) -> None:
        world = self.server.world
        seconds = world.latency + (world.take_stall(tenant, self.command) if endpoint != "token" else 0.0)
        if seconds > 0:
            self.server.stopping.wait(seconds)

    # --- XSUAA ------------------------------------------------------------------

    def _token(self, tenant_name: str, raw: bytes) -> Answer:
        _require_method(self.command, ("POST",))
        if rules.media_type(self.headers.get("Content-Type")) != FORM:
            raise _oauth_refusal(400, "invalid_request", f"the body must be {FORM}")
        form = {key: values[-1] for key, values in parse_qs(raw.decode("latin-1")).items()}
        if form.get("grant_type") != "client_credentials":
            raise _oauth_refusal(400, "unsupported_grant_type", "only client_credentials is supported")
        if not self._client_authenticated(tenant_name, form):
            raise _oauth_refusal(401, "unauthorized", "Bad credentials")
        world = self.server.world
        token, ttl = world.issue_token(world.tenant(tenant_name))
        return Answer(200, {"access_token": token, "token_type": "bearer", "expires_in": ttl, "scope": "uaa.resource"})

    def _client_authenticated(self, tenant_name: str, form: dict[str, str]) -> bool:
        tenant = self.server.world.tenant(tenant_name)
        client_id, secret = _basic_credentials(self.headers.get("Authorization"))
        client_id = client_id or form.get("client_id", "")
        secret = secret or form.get("client_secret", "")
        if not hmac.compare_digest(client_id.encode(), tenant.client_id.encode()):
            return False
        if self.server.mtls:
            assert isinstance(self.connection, ssl.SSLSocket)
            peer = self.connection.getpeercert(binary_form=True)
            return tenant.certificate_der is not None and peer == tenant.certificate_der
        return tenant.client_secret is not None and hmac.compare_digest(secret.encode(), tenant.client_secret.encode())

    # --- AI Core API ------------------------------------------------------------

    def _authorise(self, tenant: str) -> None:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or self.server.world.token_tenant(token.strip()) != tenant:
            raise Refusal(
                401,
                "Unauthorized",
                "missing, invalid or expired bearer token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    def _api(self, tenant: str, endpoint: str, name: str | None, query: dict[str, list[str]], raw: bytes) -> Answer:
        world = self.server.world
        if endpoint == "quota":
            _require_method(self.command, ("GET",))
            count, quota = world.usage(tenant)
            usage = {} if rules.quota_only(query) else {"usage": {"count": count}}
            return Answer(200, {**usage, "quota": {"maxCount": quota}})
        if endpoint == "secrets":
            _require_method(self.command, ("GET", "POST"))
            return self._create(tenant, raw) if self.command == "POST" else _list(world.names(tenant), query)
        if endpoint == "secret" and name is not None:
            _require_method(self.command, ("GET", "PATCH", "DELETE"))
            return self._item(tenant, rules.check_name(name), raw)
        raise Refusal(404, "NotFound", "no such resource")

    def _create(self, tenant: str, raw: bytes) -> Answer:
        self._require_editor(tenant)
        name, value = rules.create_request(raw, content_type=self.headers.get("Content-Type"))
        self.server.world.create(tenant, name, value)
        return Answer(202, {"message": "Secret has been created"})

    def _item(self, tenant: str, name: str, raw: bytes) -> Answer:
        world = self.server.world
        if self.command == "GET":
            if not world.exists(tenant, name):
                raise Refusal(404, "NotFound", f"Docker registry secret {name} not found")
            return Answer(200, {"name": name})
        self._require_editor(tenant)
        if self.command == "DELETE":
            world.delete(tenant, name)
            return Answer(202, {"id": name, "message": "Secret has been deleted"})
        world.replace(tenant, name, rules.patch_request(raw, content_type=self.headers.get("Content-Type")))
        return Answer(202, {"id": name, "message": "Secret has been modified"})

    def _require_editor(self, tenant: str) -> None:
        if not self.server.world.is_editor(tenant):
            raise Refusal(403, "Forbidden", "the caller is not allowed to modify Docker registry secrets")


def _route(kind: str, rest: tuple[str, ...], *, mtls: bool) -> tuple[str, str | None]:
    """(endpoint, secret name) of a path below ``/<kind>/<tenant>``."""
    if kind == "uaa" and rest == ("oauth", "token"):
        return "token", None
    if kind == "api" and not mtls:
        if rest == SECRETS:
            return "secrets", None
        if len(rest) == 4 and rest[:3] == SECRETS:
            return "secret", rest[3]
        if rest == QUOTA:
            return "quota", None
    raise Refusal(404, "NotFound", "no such resource")


def _list(names: list[str], query: dict[str, list[str]]) -> Answer:
    top, skip, count_all = rules.list_window(query)
    window = names[skip:] if top is None else names[skip : skip + top]
    count = len(names) if count_all else len(window)
    return Answer(200, {"count": count, "resources": [{"name": name} for name in window]})


def _require_method(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        raise Refusal(405, "MethodNotAllowed", f"use {', '.join(allowed)}", headers={"Allow": ", ".join(allowed)})


def _raise_fault(fault: Fault | None) -> None:
    if fault is None:
        return
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    raise Refusal(fault.status, "InjectedFault", f"injected HTTP {fault.status}", headers=headers)


def _oauth_refusal(status: int, error: str, description: str) -> Refusal:
    return Refusal(status, error, description, body={"error": error, "error_description": description})


def _error_body(refusal: Refusal, request_id: str, path: str) -> dict[str, Any]:
    if refusal.body is not None:
        return refusal.body
    return {"error": {"code": refusal.code, "message": refusal.message, "requestId": request_id, "target": path}}


def _basic_credentials(header: str | None) -> tuple[str, str]:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return client_id, secret
