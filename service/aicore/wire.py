"""One target's AI Core API requests, prepared once and handed straight to an ``httpx`` transport.

``httpx.Client.request`` spends about a quarter of a PATCH's CPU on machinery these calls
never use: URL merging, cookies, the auth flow, event hooks, redirects, default-header
merging. ``Wire`` keeps httpx (its ``Request``, ``Response``, exceptions and transports)
and does only what is left, once where it can:

- the headers every request carries (``Host``, ``Accept``, ``Accept-Encoding``,
  ``Connection``, ``User-Agent``: what ``httpx.Client`` sends) are encoded once;
- the timeouts travel as the request's ``timeout`` extension, as the Client sets them;
- the response is read and closed before ``send`` returns: its connection goes back to the
  pool (keep-alive) and no stream stays open.

Errors are httpx's own (``httpx.HTTPTransport`` maps httpcore's, ``direct.DirectTransport``
maps http.client's the same way), so ``responses.transport_failure`` and
``sent_before_failing`` read them as before.
``environment_proxy`` is the proxy an ``httpx.Client`` would take from the environment.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

import httpx


class Wire:
    """Sends prepared requests through one transport. Thread-safe if the transport is (httpx's are)."""

    def __init__(self, *, transport: httpx.BaseTransport, timeout: httpx.Timeout, headers: httpx.Headers) -> None:
        self._transport = transport
        self._timeout = timeout.as_dict()
        self._headers = [(key, value) for key, value in headers.raw if key.lower() != b"host"]

    def send(
        self, method: str, url: httpx.URL, *, headers: list[tuple[bytes, bytes]], content: bytes | None = None
    ) -> httpx.Response:
        """One exchange: the default headers, then ``headers``; the response read in full and closed."""
        raw = [(b"Host", url.netloc), *self._headers, *headers]
        if content is not None:
            raw.append((b"Content-Length", str(len(content)).encode("ascii")))
        request = httpx.Request(
            method, url, headers=raw, stream=httpx.ByteStream(content or b""), extensions={"timeout": self._timeout}
        )
        response = self._transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response

    def close(self) -> None:
        """Close the transport's pooled connections."""
        self._transport.close()


def environment_proxy(url: str, *, proxies: Mapping[str, str] | None = None) -> str | None:
    """The proxy for ``url`` from ``<scheme>_PROXY`` or ``ALL_PROXY``, unless ``NO_PROXY`` covers its host.

    What ``httpx.Client(trust_env=True)`` reads; ``proxies`` is ``urllib.request.getproxies()``
    (the environment) unless given.
    """
    found = dict(urllib.request.getproxies() if proxies is None else proxies)
    parts = httpx.URL(url)
    proxy = found.get(parts.scheme) or found.get("all")
    bypass_all = "*" in (host.strip() for host in found.get("no", "").split(","))  # httpx: "*" anywhere in the list
    if not proxy or bypass_all or urllib.request.proxy_bypass_environment(parts.host, found):  # type: ignore[attr-defined]
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
