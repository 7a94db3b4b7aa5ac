"""A tiny stand-in for the Kubernetes TokenReview API, so OpenBao's kubernetes auth can log in for real.

We have no Kubernetes here. OpenBao's kubernetes auth method sends the JWT a client logs in
with to ``POST /apis/authentication.k8s.io/v1/tokenreviews`` over TLS; this server approves
exactly the tokens registered with ``approve`` and denies every other one.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import trustme

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


class TokenReviewServer:
    """``with TokenReviewServer() as kube: kube.approve(jwt, namespace=..., name=...)``."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self._approved: dict[str, dict[str, Any]] = {}
        self.reviews = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode()

    def approve(self, jwt: str, *, namespace: str, name: str, uid: str) -> None:
        self._approved[jwt] = {
            "username": f"system:serviceaccount:{namespace}:{name}",
            "uid": uid,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
        }

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        self.reviews += 1
        spec = body.get("spec") or {}
        user = self._approved.get(spec.get("token", ""))
        status: dict[str, Any] = {"authenticated": user is not None}
        if user is not None:
            status |= {"user": user, "audiences": spec.get("audiences") or []}
        else:
            status["error"] = "token not recognised"
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != REVIEW_PATH:
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                payload = json.dumps(server.review(body)).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def __enter__(self) -> TokenReviewServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
