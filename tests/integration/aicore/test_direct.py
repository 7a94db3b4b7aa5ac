"""``DirectTransport`` (httpx's contract over http.client) against loopback servers that drop connections.

What ``responses.sent_before_failing`` decides from must hold: a connection that was never
made is ``ConnectError`` (the PATCH cannot have reached AI Core), a connection lost after
the request went out is a ``RemoteProtocolError`` (it may have). A kept connection the
server closed while idle is not used for the next request.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from service.aicore.direct import DirectTransport
from service.aicore.responses import sent_before_failing

BODY = b'{"id": "reg", "message": "Secret has been modified"}'
ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class Server:
    """Reads each connection's first request; answers it (``answer``) or hangs up without a word; then closes."""

    def __init__(self, *, answer: bool) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.answer = answer
        self.connections = 0
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
                if self.answer:
                    connection.sendall(ANSWER)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def answering() -> Iterator[Server]:
    server = Server(answer=True)
    yield server
    server.close()


def transport() -> DirectTransport:
    return DirectTransport(context=ssl.create_default_context(), max_keepalive=2, keepalive_expiry=60.0)


def patch(port: int, name: str) -> httpx.Request:
    return httpx.Request(
        "PATCH",
        f"http://127.0.0.1:{port}/v2/admin/dockerRegistrySecrets/{name}",
        headers={"Host": f"127.0.0.1:{port}", "Content-Type": "application/merge-patch+json"},
        content=b'{"data": {}}',
        extensions={"timeout": {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}},
    )


def test_a_kept_connection_the_server_closed_is_not_used_again(answering: Server) -> None:
    """Every PATCH is answered on a connection of its own: the closed kept one is noticed and dropped, not sent on."""
    direct = transport()
    try:
        responses = []
        for i in range(3):
            responses.append(direct.handle_request(patch(answering.port, f"reg-{i}")))
            responses[-1].read()
            time.sleep(0.2)  # the server's close reaches the idle connection (an idle timeout passing, in life)
    finally:
        direct.close()
    assert [response.status_code for response in responses] == [202, 202, 202]
    assert responses[0].json()["message"] == "Secret has been modified"
    assert answering.connections == 3


def test_a_refused_connection_is_a_connect_error_that_was_never_sent() -> None:
    """Nothing listens: ConnectError, which the client counts as 'cannot have reached AI Core'."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(httpx.ConnectError) as caught:
        transport().handle_request(patch(port, "reg"))
    assert not sent_before_failing(caught.value)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_a_hang_up_after_the_request_went_out_may_have_been_sent() -> None:
    """The server reads the PATCH and closes without answering: RemoteProtocolError, so the outcome is unknown."""
    server = Server(answer=False)
    try:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            transport().handle_request(patch(server.port, "reg"))
    finally:
        server.close()
    assert sent_before_failing(caught.value)
