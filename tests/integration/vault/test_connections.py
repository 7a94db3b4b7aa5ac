"""The direct route's keep-alive connections (``transport.Connections``) against a server that drops them.

A loopback server answers each connection's first request and then closes it without
saying so (no ``Connection: close``), as a Vault node or a load balancer does when a kept
connection idles past its timeout. A GET on such a kept connection is sent once more on a
new one; a POST is not (it may have been acted on); a refused connection is the urllib3
error ``translate.py`` reads as "cannot connect".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import urllib3.exceptions

from service.vault.transport import Connections
from tests.hangups import OneShotServer, http_answer, refused_port

ANSWER = http_answer("200 OK", b'{"ok": true}')


@pytest.fixture
def server() -> Iterator[OneShotServer]:
    running = OneShotServer(answer=ANSWER)
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
    assert server.request_lines == [f"GET /v1/secret/data/p{i} HTTP/1.1".encode() for i in range(3)]


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
    assert server.request_lines == [b"GET /v1/sys/health HTTP/1.1"]


def test_a_refused_connection_is_a_new_connection_error() -> None:
    """Nothing listens: urllib3's NewConnectionError, which translate.py reads as 'cannot connect'."""
    pool = connections(refused_port())
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        pool.exchange("GET", "/v1/sys/health", body=None, headers={})
