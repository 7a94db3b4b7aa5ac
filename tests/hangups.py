"""A loopback HTTP server that keeps no connection alive: for the adapters' keep-alive pools.

It reads each connection's first request, answers it with ``answer`` (or, when that is None,
hangs up without a word), and closes the connection without saying so (no
``Connection: close``), as a Vault node or a load balancer does when a kept connection idles
past its timeout. With ``race``, it keeps the connection open after the answer and hangs up
only when the next request on it arrives: the close racing with the client's send.
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

    def __init__(self, *, answer: bytes | None, race: bool = False) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.answer = answer
        self.race = race
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
                if self._read_request(connection) and self.answer is not None:
                    connection.sendall(self.answer)
                    if self.race:
                        self._read_request(connection)  # ... and hang up on it

    def _read_request(self, connection: socket.socket) -> bool:
        request = b""
        while b"\r\n\r\n" not in request and (chunk := connection.recv(65536)):
            request += chunk
        if request:
            self.request_lines.append(request.split(b"\r\n", 1)[0])
        return bool(request)

    def close(self) -> None:
        self._listener.close()


def refused_port() -> int:
    """A loopback port nothing listens on (it was just bound and released)."""
    probe = socket.create_server(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port
