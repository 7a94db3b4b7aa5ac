"""One HTTP/1.1 exchange on a kept connection, for the adapters' direct routes (stdlib only).

Vault's transport (``vault/transport.py``) and AI Core's (``aicore/direct.py``) each send one
request at a time on a connection and read the whole answer. ``http.client`` did that at
about 160 us of CPU per Vault read on this project's machine, against 60 us for the same
exchange written out here (docs/performance.md): it builds the request head a header at a
time with a check per call, makes a new buffered reader per answer, and parses the answer's
headers with ``email.parser``. What is here is the subset the two adapters use:

- a request is its head (built and checked in one pass: no CR, LF or NUL in a name, a value
  or the target, so nothing can be smuggled into the head) and an optional body, sent with one
  ``sendall``;
- an answer's status line and headers (at most ``MAX_HEADERS`` lines of ``MAX_LINE`` bytes, as
  ``http.client`` allows; obsolete line folding joined), then a body by ``Content-Length``, by
  chunks, or to the connection's end; no body for HEAD, 1xx, 204 and 304; interim 1xx answers
  are skipped;
- failures are ``http.client``'s exceptions, so each adapter's mapping stays what it was:
  ``RemoteDisconnected`` when the server closed before answering, ``BadStatusLine``,
  ``LineTooLong``, ``IncompleteRead``, ``HTTPException`` for a malformed answer, and the
  socket's own ``OSError`` / ``TimeoutError``. No exception or message carries a header value.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import struct
from collections.abc import Iterable
from dataclasses import dataclass

MAX_LINE = 65536  # http.client's _MAXLINE
MAX_HEADERS = 100  # http.client's _MAXHEADERS
_CHUNK = 65536
_NO_BODY = frozenset({204, 304})
_FORBIDDEN = ("\r", "\n", "\0")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


class Channel:
    """One connection: its socket, its TLS session (if any), and what has been received but not read yet.

    The socket is in blocking mode, its timeouts set in the kernel (``SO_RCVTIMEO``,
    ``SO_SNDTIMEO``): a socket in Python's timeout mode polls before every ``recv`` and
    ``send``, each a release of the GIL and, with 64 rotation threads, most often a context
    switch more (perf: 19 switches per unchanged rotation, 14% of the process's CPU in the
    scheduler). A call that times out raises ``TimeoutError``, as in timeout mode. TLS runs
    over memory BIOs (``SSLContext.wrap_bio``, as asyncio does it), so that it reads and writes
    through the same blocking socket: an ``SSLSocket`` in blocking mode retries a timed-out
    read forever.
    """

    def __init__(self, sock: socket.socket, *, timeout: float | None = None) -> None:
        self.sock: socket.socket | None = sock
        self._buffer = bytearray()
        self._tls: ssl.SSLObject | None = None  # with its two BIOs, made by the handshake
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None
        self._timeouts: tuple[float | None, float | None] | None = None
        sock.settimeout(None)  # blocking; the kernel enforces the timeouts
        self.set_timeouts(read=timeout, write=timeout)

    @classmethod
    def open(cls, host: str, port: int, *, context: ssl.SSLContext | None, timeout: float | None) -> Channel:
        """Connect (and shake hands, with a context); raises what ``socket`` and ``ssl`` raise."""
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel = cls(sock, timeout=timeout)
            if context is not None:
                channel._handshake(context, host)
        except BaseException:
            sock.close()
            raise
        return channel

    def set_timeouts(self, *, read: float | None, write: float | None) -> None:
        """How long one receive or one send may wait (None: no limit)."""
        if self._timeouts == (read, write):
            return
        sock = self._socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(read))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(write))
        self._timeouts = (read, write)

    @property
    def buffered(self) -> int:
        """Bytes received past the last answer (an idle connection with any is not used again)."""
        if self._tls is None or self._incoming is None:
            return len(self._buffer)
        return len(self._buffer) + self._incoming.pending + self._tls.pending()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buffer.clear()

    def send(self, data: bytes) -> None:
        if self._tls is None:
            self._send_raw(data)
            return
        self._tls.write(data)
        self._flush()

    def _handshake(self, context: ssl.SSLContext, host: str) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=host)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._receive_tls():
                    raise ConnectionAbortedError("the server closed the connection during the TLS handshake") from None
        self._flush()

    def _flush(self) -> None:
        """Send what TLS has written to the outgoing BIO."""
        if self._outgoing is not None and self._outgoing.pending:
            self._send_raw(self._outgoing.read())

    def _receive_tls(self) -> bool:
        assert self._incoming is not None, "after the handshake began"
        data = self._recv_raw()
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        return bool(data)

    def _send_raw(self, data: bytes) -> None:
        try:
            self._socket().sendall(data)
        except BlockingIOError:  # SO_SNDTIMEO ran out
            raise TimeoutError("timed out sending") from None

    def _recv_raw(self) -> bytes:
        try:
            return self._socket().recv(_CHUNK)
        except BlockingIOError:  # SO_RCVTIMEO ran out
            raise TimeoutError("timed out receiving") from None

    def line(self) -> bytes:
        """The next line with its ending; b"" at the connection's end; ``LineTooLong`` past ``MAX_LINE``."""
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                if len(line) > MAX_LINE + 2:
                    raise http.client.LineTooLong("header line")
                return line
            if len(buffer) > MAX_LINE:
                raise http.client.LineTooLong("header line")
            start = len(buffer)
            if not self._fill():
                line = bytes(buffer)
                buffer.clear()
                return line

    def exactly(self, count: int) -> bytes:
        """``count`` bytes; ``IncompleteRead`` when the connection ends first."""
        buffer = self._buffer
        while len(buffer) < count:
            if not self._fill():
                partial = bytes(buffer)
                buffer.clear()
                raise http.client.IncompleteRead(partial, count - len(partial))
        data = bytes(buffer[:count])
        del buffer[:count]
        return data

    def rest(self) -> bytes:
        """Everything until the connection's end."""
        while self._fill():
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _fill(self) -> bool:
        data = self._recv_raw() if self._tls is None else self._read_tls()
        self._buffer += data
        return bool(data)

    def _read_tls(self) -> bytes:
        """Decrypted bytes, receiving as TLS needs; b"" at the end (close_notify, or a close without one)."""
        assert self._tls is not None
        while True:
            try:
                return self._tls.read(_CHUNK)
            except ssl.SSLWantReadError:
                self._flush()  # a post-handshake message may want an answer
                self._receive_tls()  # at the connection's end the BIO gets its EOF: the next read says how it ended
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # a ragged end reads as the end, as SSLSocket's suppress_ragged_eofs does

    def _socket(self) -> socket.socket:
        if self.sock is None:
            raise http.client.NotConnected("the connection is closed")
        return self.sock


class Fields:
    """An answer's headers in the order received; ``get`` is case-insensitive and gives the first value."""

    __slots__ = ("_first", "raw")

    def __init__(self, raw: list[tuple[str, str]]) -> None:
        self.raw = raw
        self._first: dict[str, str] = {}
        for name, value in raw:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str = "", /) -> str:
        return self._first.get(name.lower(), default)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: Fields
    content: bytes
    will_close: bool  # the server closes the connection after this answer (or the body ran to its end)


def _timeval(seconds: float | None) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO / SO_SNDTIMEO; zero means no limit, so None is zero."""
    if seconds is None:
        return struct.pack("ll", 0, 0)
    whole = int(seconds)
    micro = max(int((seconds - whole) * 1_000_000), 0 if whole else 1)  # never zero for a positive timeout
    return struct.pack("ll", whole, micro)


def head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request line and header lines; ``ValueError`` (naming neither value nor name) for a forbidden character."""
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        if any(c in name or c in value for c in _FORBIDDEN) or not name or ":" in name or " " in name:
            raise ValueError("a request header holds a character HTTP does not allow (CR, LF or NUL)")
        lines.append(f"{name}: {value}")
    if any(c in target or c in method for c in (*_FORBIDDEN, " ")):
        raise ValueError("the request target holds a character HTTP does not allow")
    lines += ["", ""]
    return "\r\n".join(lines).encode("latin-1")


def exchange(channel: Channel, request_head: bytes, body: bytes | None, *, method: str) -> Answer:
    """Send one request and read its whole answer."""
    channel.send(request_head + body if body else request_head)
    return read_answer(channel, method=method)


def read_answer(channel: Channel, *, method: str) -> Answer:
    while True:
        version, status, reason = _status_line(channel)
        headers = _header_lines(channel)
        if not 100 <= status < 200 or status == 101:
            break  # an interim 1xx (100 Continue, 103 Early Hints) is followed by the answer itself
    fields = Fields(headers)
    connection = fields.get("connection").lower()
    will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    if method == "HEAD" or status in _NO_BODY or 100 <= status < 200:
        return Answer(status, reason, fields, b"", will_close)
    if "chunked" in fields.get("transfer-encoding").lower():
        return Answer(status, reason, fields, _chunks(channel), will_close)
    length = fields.get("content-length")
    if length:
        if not _DIGITS.issuperset(length):
            raise http.client.HTTPException("the answer's Content-Length is not a number")
        count = int(length)
        return Answer(status, reason, fields, channel.exactly(count), will_close)
    return Answer(status, reason, fields, channel.rest(), True)  # no length: the body ends with the connection


def _status_line(channel: Channel) -> tuple[str, int, str]:
    line = channel.line()
    if not line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    text = line.decode("latin-1")
    version, _, rest = text.rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine("not an HTTP/1.x status line")  # the line itself is not echoed
    return version, int(code), reason.strip()


def _header_lines(channel: Channel) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = channel.line()
        if line in (b"\r\n", b"\n", b""):
            return headers
        if len(headers) >= MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and headers:  # obsolete line folding: part of the previous value
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise http.client.HTTPException("a malformed header line in the answer")
        headers.append((name, value.strip()))


def _chunks(channel: Channel) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = channel.line()
        if not size_line:
            raise http.client.IncompleteRead(b"".join(parts))
        size_text = size_line.split(b";", 1)[0].strip().decode("latin-1")
        if not size_text or not _HEX.issuperset(size_text):
            raise http.client.HTTPException("a malformed chunk size in the answer")
        size = int(size_text, 16)
        if size == 0:
            _header_lines(channel)  # trailers, up to the blank line
            return b"".join(parts)
        parts.append(channel.exactly(size))
        if channel.line() not in (b"\r\n", b"\n"):
            raise http.client.HTTPException("a chunk not followed by its line ending")
