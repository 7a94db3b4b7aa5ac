"""``service.http11``: answers read as ``http.client`` reads them, and requests that cannot smuggle a header."""

from __future__ import annotations

import http.client
import io
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import http11


@contextmanager
def channel_with(data: bytes, *, close: bool = True) -> Iterator[http11.Channel]:
    """A channel whose peer has sent ``data`` (and closed, unless ``close`` is False)."""
    ours, theirs = socket.socketpair()
    theirs.sendall(data)
    if close:
        theirs.close()
    channel = http11.Channel(ours)
    try:
        yield channel
    finally:
        channel.close()
        if not close:
            theirs.close()


class _Sock:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


def stdlib_read(data: bytes, method: str) -> tuple[int, str, list[tuple[str, str]], bytes, bool]:
    response = http.client.HTTPResponse(_Sock(data), method=method)  # type: ignore[arg-type]
    response.begin()
    will_close = response.will_close
    return response.status, response.reason, response.getheaders(), response.read(), will_close


def ours_read(data: bytes, method: str) -> tuple[int, str, list[tuple[str, str]], bytes, bool]:
    with channel_with(data) as channel:
        answer = http11.read_answer(channel, method=method)
    return answer.status, answer.reason, answer.headers.raw, answer.content, answer.will_close


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=30)
_extra = st.lists(
    st.tuples(_token, _value).filter(
        lambda kv: kv[0].lower() not in ("content-length", "transfer-encoding", "connection")
    ),
    max_size=6,
)


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, str]:
    status = draw(st.sampled_from([200, 201, 202, 204, 304, 400, 403, 404, 412, 429, 500, 503]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    connection = draw(st.sampled_from([None, "close", "keep-alive"]))
    method = draw(st.sampled_from(["GET", "PATCH", "POST", "HEAD"]))
    headers = draw(_extra)
    if connection:
        headers.append(("Connection", connection))
    no_body = method == "HEAD" or status in (204, 304)
    if status in (204, 304) and framing == "chunked":  # a server must not; http.client then reads chunks anyway
        framing = "length"
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
        payload = b"" if no_body else body
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
        payload = b"" if no_body else b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        payload = b"" if no_body else body
    lines = [f"{version} {status} Reason Phrase", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload, method


@settings(max_examples=300, deadline=None)
@given(answers())
def test_an_answer_reads_as_http_client_reads_it(case: tuple[bytes, str]) -> None:
    """Status, reason, headers (in order), body and whether the connection closes: as the standard library."""
    data, method = case
    assert ours_read(data, method) == stdlib_read(data, method)


def test_interim_answers_are_skipped_and_folded_lines_joined() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\nContent-Length: 2\r\n\r\nok"
    with channel_with(data) as channel:
        answer = http11.read_answer(channel, method="GET")
    assert (answer.status, answer.headers.get("x-long"), answer.content) == (200, "first second", b"ok")


def test_chunk_extensions_and_trailers() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;name=x\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    with channel_with(data) as channel:
        assert http11.read_answer(channel, method="GET").content == b"abc"


def test_two_answers_on_one_connection_stay_apart() -> None:
    """What arrives after an answer stays for the next one; a kept channel with leftovers is not reused."""
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
    second = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    with channel_with(first + second, close=False) as channel:
        assert http11.read_answer(channel, method="GET").content == b"one"
        assert http11.read_answer(channel, method="GET").status == 404
        assert channel.buffered == 0


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", http.client.RemoteDisconnected),
        (b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 20 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n", http.client.LineTooLong),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", http.client.HTTPException),
    ],
    ids=[
        "closed",
        "not-http",
        "short-code",
        "short-body",
        "signed-length",
        "bad-chunk",
        "hex-prefix",
        "short-chunk",
        "no-colon",
        "long-line",
        "many-headers",
    ],
)
def test_a_malformed_answer_raises_what_http_client_would(data: bytes, error: type[Exception]) -> None:
    with channel_with(data) as channel, pytest.raises(error):
        http11.read_answer(channel, method="GET")


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Vault-Token", "s.secret-token\r\nX-Injected: 1")],
        [("X-Vault-Token", "s.secret-token\n")],
        [("X-Vault-Token", "s.secret\0token")],
        [("X-Bad Name", "v")],
        [("X-Bad:Name", "v")],
        [("", "v")],
    ],
)
def test_a_header_that_would_break_the_head_is_refused_without_its_value(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match="does not allow") as raised:
        http11.head("GET", "/v1/secret/data/x", headers)
    assert "secret" not in str(raised.value)


def test_a_target_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="target"):
        http11.head("GET", "/v1/x HTTP/1.1\r\nHost: evil", [])


def test_the_head_is_what_http_client_would_send() -> None:
    head = http11.head("PATCH", "/v2/admin/dockerRegistrySecrets/a", [("Host", "api:443"), ("Content-Length", "2")])
    assert head == b"PATCH /v2/admin/dockerRegistrySecrets/a HTTP/1.1\r\nHost: api:443\r\nContent-Length: 2\r\n\r\n"
