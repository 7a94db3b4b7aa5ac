"""``DirectTransport`` (httpx's contract over http.client) against loopback servers that drop connections.

What ``responses.sent_before_failing`` decides from must hold: a connection that was never
made is ``ConnectError`` (the PATCH cannot have reached AI Core), a connection lost after
the request went out is a ``RemoteProtocolError`` (it may have). A kept connection the
server closed while idle is not used for the next request.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import httpx
import pytest

from service.aicore.direct import DirectTransport
from service.aicore.responses import sent_before_failing
from tests.hangups import OneShotServer, http_answer, refused_port

ANSWER = http_answer("202 Accepted", b'{"id": "reg", "message": "Secret has been modified"}')


@pytest.fixture
def answering() -> Iterator[OneShotServer]:
    server = OneShotServer(answer=ANSWER)
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


def test_a_kept_connection_the_server_closed_is_not_used_again(answering: OneShotServer) -> None:
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
    with pytest.raises(httpx.ConnectError) as caught:
        transport().handle_request(patch(refused_port(), "reg"))
    assert not sent_before_failing(caught.value)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_a_hang_up_after_the_request_went_out_may_have_been_sent() -> None:
    """The server reads the PATCH and closes without answering: RemoteProtocolError, so the outcome is unknown."""
    server = OneShotServer(answer=None)
    try:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            transport().handle_request(patch(server.port, "reg"))
    finally:
        server.close()
    assert sent_before_failing(caught.value)
