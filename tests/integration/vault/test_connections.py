"""The direct route's keep-alive connections (``transport.Connections``) against servers that drop them.

A kept connection the server has closed is not used, whatever the method. When the close
races with the send (the server hangs up on the request itself), a GET is sent once more
on a new connection and a POST is not (it may have been acted on). A refused connection is
the urllib3 error ``translate.py`` reads as "cannot connect".
"""

from __future__ import annotations

import time
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


def test_a_kept_connection_the_server_closed_is_not_used_for_a_post(server: OneShotServer) -> None:
    """A login after an idle spell goes out on a new connection: the closed kept one is noticed before sending."""
    pool = connections(server.port)
    try:
        pool.exchange("GET", "/v1/sys/health", body=None, headers={})
        time.sleep(0.2)  # the server's close reaches the kept connection (an idle timeout passing, in life)
        reply = pool.exchange(
            "POST", "/v1/auth/approle/login", body=b"{}", headers={"Content-Type": "application/json"}
        )
    finally:
        pool.close()
    assert reply.status_code == 200
    assert server.request_lines == [b"GET /v1/sys/health HTTP/1.1", b"POST /v1/auth/approle/login HTTP/1.1"]


def test_when_the_close_races_the_send_a_get_is_sent_again_and_a_post_is_not() -> None:
    """The server hangs up on the second request of a connection: GET once more on a new one; POST an error."""
    racing = OneShotServer(answer=ANSWER, race=True)
    pool = connections(racing.port)
    try:
        pool.exchange("GET", "/v1/sys/health", body=None, headers={})
        again = pool.exchange("GET", "/v1/secret/data/p", body=None, headers={})
        with pytest.raises(urllib3.exceptions.ProtocolError) as caught:
            pool.exchange("POST", "/v1/auth/approle/login", body=b"{}", headers={"Content-Type": "application/json"})
    finally:
        pool.close()
        racing.close()
    assert again.status_code == 200
    assert caught.value.__context__ is None  # raised outside the except block: nothing of the exchange rides along
    assert racing.request_lines.count(b"POST /v1/auth/approle/login HTTP/1.1") == 1  # sent once, never again
    assert racing.request_lines.count(b"GET /v1/secret/data/p HTTP/1.1") == 2  # hung up on, then answered


def test_a_refused_connection_is_a_new_connection_error() -> None:
    """Nothing listens: urllib3's NewConnectionError, which translate.py reads as 'cannot connect'."""
    pool = connections(refused_port())
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        pool.exchange("GET", "/v1/sys/health", body=None, headers={})
