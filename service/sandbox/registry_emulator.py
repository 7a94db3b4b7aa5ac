"""A small Docker registry with token auth, over real HTTP(S), in-process (tests and demo).

It answers what a docker client asks when it pulls, the way CNCF distribution and its
token servers do:

- ``GET /v2/``: 401 with ``Bearer realm="<own>/token",service="<service>"`` (or
  ``Basic realm=...`` with ``auth="basic"``); 200 with a valid token (or password).
- ``GET /token?service=...&scope=repository:NAME:pull``: Basic auth; grants only the
  repositories the user may pull, an empty ``access`` for the others (not an error).
- ``HEAD|GET /v2/NAME/manifests/REF``: needs a token whose access includes NAME (401
  ``error="insufficient_scope"`` otherwise); 404 for an unknown tag.

``auth="none"`` serves anyone. ``revoke(user)`` makes both the password and every token
issued to that user stop working.
``fail_with(500)`` makes every request answer that status. Requests are recorded without
their credentials, for tests that check what a client sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import socket
import ssl
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

DEFAULT_SERVICE = "registry-emulator"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "layers": []}).encode()


@dataclass
class _User:
    password: str = field(repr=False)
    repositories: frozenset[str]
    revoked: bool = False


@dataclass(frozen=True)
class _Grant:
    username: str
    repositories: frozenset[str]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it: never the credential itself."""

    method: str
    path: str
    query: dict[str, list[str]]
    auth_scheme: str | None  # "basic", "bearer" or None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: RegistryEmulator, tls: ssl.SSLContext | None) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            # The handshake then happens in the connection's thread, not in the accept loop.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that reject our certificate or drop the connection are not server errors."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for connection in open_now:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def setup(self) -> None:
        with self.server.connections_lock:
            self.server.connections.add(self.request)  # before the handshake, so stop() can end a stuck one
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
        except OSError:
            self.finish_connection()
            raise
        with self.server.connections_lock:
            self.server.emulator.connections_accepted += 1
        super().setup()

    def finish_connection(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.request)

    def finish(self) -> None:
        self.finish_connection()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``RegistryEmulator.requests`` instead."""

    def do_GET(self) -> None:
        self.server.emulator.handle(self)

    def do_HEAD(self) -> None:
        self.server.emulator.handle(self)


class RegistryEmulator:
    """``with RegistryEmulator() as registry: registry.url``: a token-auth v2 registry on loopback."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        auth: Literal["bearer", "basic", "none"] = "bearer",
        service: str = DEFAULT_SERVICE,
        realm: str | None = None,
    ) -> None:
        """``auth="none"`` lets anyone pull anything; ``realm`` names another token endpoint than our own."""
        self.auth = auth
        self.service = service
        self.realm = realm
        self.requests: list[RecordedRequest] = []
        self.connections_accepted = 0
        self._tls = tls
        self._users: dict[str, _User] = {}
        self._tokens: dict[str, _Grant] = {}
        self._failure: int | None = None
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the registry emulator is not running")
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        """Listen on a free loopback port; return the base URL (``http://127.0.0.1:PORT``)."""
        self._server = _Server(self, self._tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="registry-emulator", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None

    def __enter__(self) -> RegistryEmulator:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    # --- what tests arrange ---------------------------------------------------

    def add_user(self, username: str, password: str, *, repositories: Iterable[str] = ()) -> None:
        """A user who may pull ``repositories`` (each has a ``latest`` manifest)."""
        with self._lock:
            self._users[username] = _User(password, frozenset(repositories))

    def revoke(self, username: str) -> None:
        """The user's password and every token issued to them stop working."""
        with self._lock:
            self._users[username].revoked = True

    def issued_tokens(self) -> list[str]:
        """Every token handed out so far (tests search logs and results for them)."""
        with self._lock:
            return list(self._tokens)

    def fail_with(self, status: int | None) -> None:
        """Answer every request with ``status`` (None: behave again)."""
        self._failure = status

    # --- request handling -----------------------------------------------------

    def handle(self, request: _Handler) -> None:
        parts = urlsplit(request.path)
        scheme = _auth_scheme(request.headers.get("Authorization"))
        self.requests.append(RecordedRequest(request.command, parts.path, parse_qs(parts.query), scheme))
        if self._failure is not None:
            _reply(request, self._failure, {"errors": [{"code": "UNKNOWN", "message": "emulated failure"}]})
        elif parts.path == "/token":
            self._token(request, parse_qs(parts.query))
        elif parts.path in ("/v2", "/v2/"):
            self._base(request)
        elif parts.path.startswith("/v2/") and "/manifests/" in parts.path:
            name, _, reference = parts.path.removeprefix("/v2/").rpartition("/manifests/")
            self._manifest(request, name, reference)
        else:
            _reply(request, 404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})

    def _base(self, request: _Handler) -> None:
        if self._authorised(request) is None:
            self._challenge(request, error=_bearer_error(request))
        else:
            _reply(request, 200, {})

    def _manifest(self, request: _Handler, name: str, reference: str) -> None:
        granted = self._authorised(request)
        if granted is None:
            self._challenge(request, scope=f"repository:{name}:pull", error=_bearer_error(request))
        elif name not in granted:
            self._refuse_scope(request, name)
        elif reference != "latest" and reference != _digest():
            _reply(request, 404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
        else:
            headers = {"Content-Type": MANIFEST_TYPE, "Docker-Content-Digest": _digest()}
            _reply(request, 200, _MANIFEST, headers=headers)

    def _refuse_scope(self, request: _Handler, name: str) -> None:
        if self.auth == "basic":
            _reply(
                request, 403, {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}
            )
        else:
            self._challenge(request, scope=f"repository:{name}:pull", error="insufficient_scope")

    def _token(self, request: _Handler, query: dict[str, list[str]]) -> None:
        if query.get("service") != [self.service]:
            _reply(request, 400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]})
            return
        username = self._password_user(request.headers.get("Authorization"))
        if username is None:
            _reply(request, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
            return
        token = "emu-" + secrets.token_urlsafe(24)
        granted = self._grantable(username, query.get("scope", []))
        with self._lock:
            self._tokens[token] = _Grant(username, granted)
        _reply(request, 200, {"token": token, "access_token": token, "expires_in": 300})

    def _grantable(self, username: str, scopes: list[str]) -> frozenset[str]:
        """The requested repositories this user may pull: the intersection, never an error."""
        allowed = self._users[username].repositories
        wanted = {name for scope in scopes for name in _pull_repositories(scope)}
        return frozenset(wanted & allowed)

    def _challenge(self, request: _Handler, *, scope: str | None = None, error: str | None = None) -> None:
        if self.auth == "basic":
            header = f'Basic realm="{self.service}"'
        else:
            header = f'Bearer realm="{self.realm or self.url + "/token"}",service="{self.service}"'
            header += f',scope="{scope}"' if scope else ""
            header += f',error="{error}"' if error else ""
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        _reply(request, 401, body, headers={"WWW-Authenticate": header})

    def _authorised(self, request: _Handler) -> frozenset[str] | None:
        """The repositories this request may pull, or None when it is not authenticated."""
        header = request.headers.get("Authorization")
        if self.auth == "none":
            return frozenset(name for user in self._users.values() for name in user.repositories)
        if self.auth == "basic":
            username = self._password_user(header)
            return None if username is None else self._users[username].repositories
        if not header or not header.startswith("Bearer "):
            return None
        with self._lock:
            grant = self._tokens.get(header.removeprefix("Bearer ").strip())
            if grant is None or self._users[grant.username].revoked:
                return None
            return grant.repositories

    def _password_user(self, header: str | None) -> str | None:
        """The username when ``header`` carries Basic credentials of a user who is not revoked."""
        username, password = _basic_credentials(header)
        with self._lock:
            user = self._users.get(username or "")
            if user is None or user.revoked or not secrets.compare_digest(user.password, password or ""):
                return None
        return username


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    username, separator, password = decoded.partition(":")
    return (username, password) if separator else (None, None)


def _auth_scheme(header: str | None) -> str | None:
    return header.split(" ", 1)[0].lower() if header else None


def _bearer_error(request: _Handler) -> str | None:
    """distribution answers a token it does not accept with ``error="invalid_token"``."""
    header = request.headers.get("Authorization") or ""
    return "invalid_token" if header.startswith("Bearer ") else None


def _pull_repositories(scope: str) -> list[str]:
    """Repositories a ``repository:NAME:ACTIONS`` scope asks to pull (several scopes: space-separated)."""
    names = []
    for item in scope.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and "pull" in actions.split(","):
            names.append(name)
    return names


def _digest() -> str:
    return "sha256:" + hashlib.sha256(_MANIFEST).hexdigest()


def _reply(request: _Handler, status: int, body: object, *, headers: dict[str, str] | None = None) -> None:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Docker-Distribution-Api-Version", "registry/2.0")
    request.send_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(payload)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(payload)
