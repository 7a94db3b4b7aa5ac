"""An ``httpx`` transport over keep-alive connections of our own (``service.http11``), for a target without a proxy.

``httpx.HTTPTransport`` (httpcore over h11, both pure Python) costs about twice the CPU of
``http.client`` per PATCH on this project's machine (docs/performance.md): h11's
event machinery, httpcore's pool and its locks, and the sync stream wrappers. A target's
API calls need none of it: one origin, HTTP/1.1, a bounded number of callers (the
per-target slots). ``DirectTransport`` keeps the httpx contract the client is written
against (``handle_request`` takes an ``httpx.Request`` and returns an ``httpx.Response``,
failures are httpx's exceptions) and leaves the exchange to ``service.http11`` (the standard
library's sockets; a PATCH's head goes out in one ``sendall``, its answer is parsed without
``http.client``'s ``email.parser``):

- connections are kept per origin (``service.keepalive``), up to ``max_keepalive``, and
  dropped after ``keepalive_expiry`` seconds idle (httpx's ``Limits``); a kept connection
  the server has closed meanwhile is closed, not used;
- the timeouts are the request's ``timeout`` extension: ``connect`` for connecting, ``read``
  for the exchange, as httpx applies them;
- failures map as ``httpx.HTTPTransport`` maps httpcore's, which ``responses.py`` reads to
  decide whether a PATCH may have reached AI Core: connecting is ``ConnectError`` /
  ``ConnectTimeout`` (not sent), anything later ``WriteError``, ``ReadError``,
  ``RemoteProtocolError``, ``ReadTimeout`` or ``WriteTimeout`` (maybe sent). The socket or
  TLS error is the ``__cause__``, as httpx chains it.

A proxied target keeps ``httpx.HTTPTransport`` (``client.build_client``).
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable

import httpx

from service import http11
from service.keepalive import KeptConnections

_Origin = tuple[str, str, int]


class DirectTransport(httpx.BaseTransport):
    """``http.client`` connections kept per origin; thread-safe."""

    def __init__(
        self,
        *,
        context: ssl.SSLContext,
        max_keepalive: int,
        keepalive_expiry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._kept = KeptConnections(max_kept=max_keepalive, expiry=keepalive_expiry, clock=clock)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        body = request.read()
        try:
            # httpx's headers (Host first), the body's length where it sends one: what the server gets is unchanged
            request_head = http11.head(request.method, url.raw_path.decode("ascii"), _headers(request.headers.raw))
        except ValueError as e:
            raise httpx.LocalProtocolError(str(e), request=request) from None
        connection = self._kept.take(origin) or self._open(origin, timeout=timeouts.get("connect"))
        phase = "write"
        try:
            read = timeouts.get("read")
            connection.set_timeouts(read=read, write=timeouts.get("write", read))
            connection.send(request_head + body if body else request_head)
            phase = "read"
            answer = http11.read_answer(connection, method=request.method)
        except (OSError, http.client.HTTPException) as e:
            connection.close()
            raise _exchange_failure(e, phase=phase, request=request) from e
        except BaseException:
            connection.close()
            raise
        self._kept.settle(origin, connection, will_close=answer.will_close)
        return httpx.Response(
            answer.status,
            headers=answer.headers.raw,
            stream=httpx.ByteStream(answer.content),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode("latin-1")},
            request=request,
        )

    def _open(self, origin: _Origin, *, timeout: float | None) -> http11.Channel:
        scheme, host, port = origin
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"request URL has an unsupported protocol '{scheme}://'")
        context = self._context if scheme == "https" else None
        try:
            return http11.Channel.open(host, port, context=context, timeout=timeout)
        except TimeoutError as e:
            raise httpx.ConnectTimeout(f"connect timed out ({type(e).__name__})") from e
        except OSError as e:  # refused, unreachable, DNS, TLS handshake or verification (ssl.SSLError)
            raise httpx.ConnectError(f"cannot connect ({type(e).__name__})") from e

    def close(self) -> None:
        self._kept.close()


def _headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


def _exchange_failure(error: BaseException, *, phase: str, request: httpx.Request) -> httpx.TransportError:
    """A failure after connecting, as httpx names it: the request may have reached the server."""
    if isinstance(error, TimeoutError):
        timeout = httpx.WriteTimeout if phase == "write" else httpx.ReadTimeout
        return timeout(f"timed out ({phase})", request=request)
    if isinstance(error, http.client.RemoteDisconnected):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    if isinstance(error, http.client.HTTPException):
        return httpx.RemoteProtocolError(f"malformed answer ({type(error).__name__})", request=request)
    kind = httpx.WriteError if phase == "write" else httpx.ReadError
    return kind(f"connection lost ({type(error).__name__})", request=request)
