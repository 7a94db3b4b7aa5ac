"""The direct route's keep-alive connections (``transport.Connections``) against a server that drops them.

A loopback server answers each connection's first request and then closes it without
saying so (no ``Connection: close``), as a Vault node or a load balancer does when a kept
connection idles past its timeout. A GET on such a kept connection is sent once more on a
new one; a POST is not (it may have been acted on); a refused connection is the urllib3
error ``translate.py`` reads as "cannot connect".
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import urllib3.exceptions

from service.vault.transport import Connections

BODY = b'{"ok": true}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class OneShotServer:
    """Answers the first request of every connection, then closes the connection silently."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                if request:
                    self.requests.append(request.split(b"\r\n", 1)[0])
                    connection.sendall(ANSWER)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def server() -> Iterator[OneShotServer]:
    running = OneShotServer()
    yield running
    running.close()


def connections(port: int) -> Connections:
    return Connections(f"http://127.0.0.1:{port}", context=None, max_connections=2, timeout=5.0)


def test_a_get_on_a_kept_connection_the_server_closed_is_sent_again_on_a_new_one(server: OneShotServer) -> None:
    """Each GET gets its answer although every kept connection was closed by the server after one answer."""
    pool = connections(server.port)
    try:
        replies = [pool.exchange("GET", f"/v1/secret/data/p{i}", body=None, headers={}) for i in range(3)]
    finally:
        pool.close()
    assert [reply.status_code for reply in replies] == [200, 200, 200]
    assert replies[0].json() == {"ok": True}
    assert replies[0].headers.get("content-type", "") == "application/json"  # looked up case-insensitively
    assert server.requests == [f"GET /v1/secret/data/p{i} HTTP/1.1".encode() for i in range(3)]


def test_a_post_on_a_kept_connection_the_server_closed_is_not_sent_again(server: OneShotServer) -> None:
    """A POST may have been acted on: the dropped connection is an error (urllib3's ProtocolError), sent once."""
    pool = connections(server.port)
    try:
        pool.exchange("GET", "/v1/sys/health", body=None, headers={})  # leaves a kept connection behind
        with pytest.raises(urllib3.exceptions.ProtocolError) as caught:
            pool.exchange("POST", "/v1/auth/approle/login", body=b"{}", headers={"Content-Type": "application/json"})
    finally:
        pool.close()
    assert caught.value.__context__ is None  # raised outside the except block: nothing of the exchange rides along
    assert server.requests == [b"GET /v1/sys/health HTTP/1.1"]


def test_a_refused_connection_is_a_new_connection_error() -> None:
    """Nothing listens: urllib3's NewConnectionError, which translate.py reads as 'cannot connect'."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    pool = connections(port)
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        pool.exchange("GET", "/v1/sys/health", body=None, headers={})
