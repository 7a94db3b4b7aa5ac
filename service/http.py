"""One HTTP port: /livez, /readyz, /metrics, /status (stdlib server, one thread per request).

The probes (/livez, /readyz) are always open. /status and /metrics describe every secret
and target, so when a bearer token is configured (``http.token``) they answer 401 with
``WWW-Authenticate: Bearer`` unless the request carries it; the comparison is constant time.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from service import logs

log = logs.get_logger("rotator.http")


@dataclass(frozen=True, slots=True)
class Probes:
    """What the endpoints ask: each callable is cheap or bounded by its own timeout."""

    live: Callable[[], bool]
    ready: Callable[[], dict[str, str]]  # check name -> "ok" or the problem
    metrics: Callable[[], tuple[bytes, str]]
    status: Callable[[], dict[str, Any]]  # counts and a row per (target, secret)


class HealthServer:
    """Serves the probes on ``listen`` ("host:port"; port 0 picks a free one)."""

    def __init__(self, *, listen: str, probes: Probes, token: str | None = None) -> None:
        host, _, port = listen.rpartition(":")
        expected = f"Bearer {token}".encode() if token else None
        handler = type("Handler", (_Handler,), {"probes": probes, "expected_authorization": expected})
        self._server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler)  # noqa: S104 (configurable)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()
        log.info("http.listening", address=self.address)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


PROTECTED = frozenset({"/metrics", "/status"})


class _Handler(BaseHTTPRequestHandler):
    probes: Probes
    expected_authorization: bytes | None  # b"Bearer <token>", or None: nothing is protected
    server_version = "rotator"
    sys_version = ""

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0]
        if route in PROTECTED and not self._authorized():
            self._unauthorized()
            return
        try:
            if route == "/livez":
                alive = self.probes.live()
                self._json(200 if alive else 503, {"status": "ok" if alive else "scheduler stopped"})
            elif route == "/readyz":
                checks = self.probes.ready()
                ready = all(value == "ok" for value in checks.values())
                self._json(200 if ready else 503, {"status": "ok" if ready else "not ready", "checks": checks})
            elif route == "/metrics":
                body, content_type = self.probes.metrics()
                self._send(200, body, content_type)
            elif route == "/status":
                self._json(200, self.probes.status())
            else:
                self._json(404, {"error": "not found", "endpoints": ["/livez", "/readyz", "/metrics", "/status"]})
        except Exception as e:  # a probe's bug must answer 500, not kill the server
            log.exception("http.probe_failed", route=route, error=type(e).__name__)
            self._json(500, {"error": type(e).__name__})

    def _authorized(self) -> bool:
        if self.expected_authorization is None:
            return True
        given = self.headers.get("Authorization", "").encode("latin-1", "replace")  # as received
        return hmac.compare_digest(given, self.expected_authorization)

    def _unauthorized(self) -> None:
        body = json.dumps({"error": "unauthorized: send Authorization: Bearer <http.token>"}).encode()
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="rotator"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload, default=str).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.request", line=format % args)
