"""A loopback HTTP server that keeps no connection alive: for the adapters' keep-alive pools.

It reads each connection's first request, answers it with ``answer`` (or, when that is None,
hangs up without a word), and closes the connection without saying so (no
``Connection: close``), as a Vault node or a load balancer does when a kept connection idles
past its timeout.
"""

from __future__ import annotations

import socket
import threading


def http_answer(status: str, body: bytes) -> bytes:
    """A whole HTTP/1.1 answer with a JSON body."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


class OneShotServer:
    """Answers (or hangs up on) the first request of every connection, then closes the connection."""

    def __init__(self, *, answer: bytes | None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.answer = answer
        self.connections = 0
        self.request_lines: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                request = b""
                while b"\r\n\r\n" not in request and (chunk := connection.recv(65536)):
                    request += chunk
                if request:
                    self.request_lines.append(request.split(b"\r\n", 1)[0])
                if request and self.answer is not None:
                    connection.sendall(self.answer)

    def close(self) -> None:
        self._listener.close()


def refused_port() -> int:
    """A loopback port nothing listens on (it was just bound and released)."""
    probe = socket.create_server(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port
