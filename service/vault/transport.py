"""Vault's HTTP transport: an hvac adapter whose requests go straight through one urllib3 pool.

hvac builds the URLs and knows KV v2 and the auth methods; its default adapter sends each
request through ``requests.Session``, whose own layers (preparing the request, merging
headers, cookies, hooks, the transport adapter) cost more CPU than the HTTP exchange
itself (about 550-800 us against 245 us for a GET through ``urllib3`` on this project's
machine). ``VaultTransport`` keeps hvac's adapter contract (``X-Vault-Request``,
``X-Vault-Token``, ``X-Vault-Namespace``, ``X-Vault-Wrap-TTL``; a dict for a 200 with
JSON, else a response; ``hvac.utils.raise_for_error`` for an error status) over one
``urllib3`` connection pool for the one Vault address.

What requests would read from the environment for every request is read once, by
``Route.from_environment``, with requests' own rules: ``*_PROXY`` with ``NO_PROXY``
honoured, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (when no ``vault.ca_cert`` is set,
else requests' default, certifi's bundle), a ``~/.netrc`` login for Vault's host, and
hvac's client certificate (``VAULT_CLIENT_CERT``, ``VAULT_CLIENT_KEY``). All of it goes
into the pool (one TLS context, loaded once) at connect.

Redirects are never followed: hvac asks requests to follow them, and requests keeps
``X-Vault-Token`` on a redirect to another host. A 3xx answer raises ``Redirected``
(naming the status and the redirect's origin, never its query) for ``translate.py``.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import importlib.util
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlencode

import hvac.adapters
import hvac.utils
import requests.utils
import urllib3
import urllib3.exceptions
import urllib3.util
from urllib3.util.ssl_ import create_urllib3_context

from service import http11
from service.errors import ConfigError, ConfigIssue
from service.keepalive import KeptConnections
from service.logs import get_logger

if TYPE_CHECKING:
    _Adapter = hvac.adapters.Adapter[Any]
else:
    _Adapter = hvac.adapters.Adapter  # not generic at run time


class Redirected(Exception):
    """Vault answered with a redirect (3xx), which we do not follow: the token would go along."""

    def __init__(self, *, status: int, location: str) -> None:
        target = urllib3.util.parse_url(location) if location else None
        origin = f"{target.scheme}://{target.netloc}" if target and target.scheme and target.netloc else ""
        super().__init__(f"HTTP {status}" + (f" to {origin}" if origin else ""))
        self.status = status
        self.origin = origin


@dataclass(frozen=True)
class Route:
    """How requests reach one Vault address, read from the environment once (requests' rules)."""

    proxy: str | None  # the proxy URL, None when there is none or NO_PROXY covers the address
    ca_bundle: str  # a file or a directory of CA certificates (HTTPS only)
    netrc: tuple[str, str] | None  # a login for Vault's host from ~/.netrc (or $NETRC)
    client_cert: tuple[str, str | None] | None = None  # hvac's VAULT_CLIENT_CERT and VAULT_CLIENT_KEY

    @classmethod
    def from_environment(cls, address: str, *, ca_cert: str | None) -> Route:
        """What requests (and hvac) would use for ``address``; an explicit ``ca_cert`` wins over the environment."""
        proxies = requests.utils.get_environ_proxies(address)  # empty when NO_PROXY covers the address
        bundle = ca_cert or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        certificate = os.environ.get("VAULT_CLIENT_CERT")
        return cls(
            proxy=requests.utils.select_proxy(address, proxies) if proxies else None,
            ca_bundle=bundle or requests.utils.DEFAULT_CA_BUNDLE_PATH,
            netrc=requests.utils.get_netrc_auth(address),
            client_cert=(certificate, os.environ.get("VAULT_CLIENT_KEY")) if certificate else None,
        )


class Headers(Protocol):
    """An answer's headers, looked up case-insensitively: urllib3's ``HTTPHeaderDict``, ``http.client``'s message."""

    def get(self, name: str, default: str, /) -> str: ...


@dataclass(frozen=True)
class Reply:
    """What hvac gets back for any answer but a 200 with JSON: the parts of ``requests.Response`` it reads."""

    status_code: int
    headers: Headers
    content: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` for anything else."""
        return json.loads(self.content)


log = get_logger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "LIST", "OPTIONS"})  # sent again once when a kept connection was closed
KEEPALIVE_EXPIRY_S = 60.0  # a connection idle longer is closed, not used (Vault's own idle timeout may be shorter)
UNCHECKED_S = 1.0  # a GET may take a connection settled this recently without polling it (keepalive.py)
VAULT = "vault"  # the one origin of a Connections


class Connections:
    """Keep-alive connections (``service.http11``) to one Vault address reached without a proxy.

    urllib3's ``urlopen`` costs about as much CPU again as the ``http.client`` exchange
    under it (its ``Timeout`` and ``Retry`` objects, the dropped-connection poll, the
    response wrapper): 609 against 314 us per KV v2 read on one thread here
    (docs/performance.md). A direct route needs none of it: this keeps up to
    ``max_connections`` idle connections (one per concurrent reader; a further one is
    closed when it comes back, as urllib3's full pool discards it; ``service.keepalive``). A
    kept connection Vault has closed is not used (a login after hours idle goes out on a new
    one); when the close races with the send, a GET is sent once more on a new connection, a
    POST is not. Failures are
    raised as the urllib3 exceptions ``translate.py`` reads, without the original as context.
    """

    def __init__(self, address: str, *, context: ssl.SSLContext | None, max_connections: int, timeout: float):
        parts = urllib3.util.parse_url(address)
        host = parts.host or ""
        self._host = host.strip("[]")  # an IPv6 literal is connected to without its brackets
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._context = context if parts.scheme == "https" else None
        self._timeout = timeout
        self._kept = KeptConnections(max_kept=max_connections, expiry=KEEPALIVE_EXPIRY_S, unchecked_for=UNCHECKED_S)
        # What http.client sent before (the Host, Accept-Encoding and User-Agent of urllib3's
        # pool): Vault's audit log reads alike either way.
        self._fixed = [
            ("Host", host if parts.port is None else f"{host}:{parts.port}"),
            ("Accept-Encoding", "identity"),
            ("User-Agent", f"python-urllib3/{importlib.metadata.version('urllib3')}"),
        ]

    def exchange(self, method: str, target: str, *, body: bytes | None, headers: Mapping[str, str]) -> Reply:
        """One request and its whole answer; the connection is kept for the next one unless Vault closes it."""
        problem: urllib3.exceptions.HTTPError
        try:
            request = self._head(method, target, body, headers)
            connection, reused = self._take(resent_if_closed=method in IDEMPOTENT)
            try:
                return self._exchange(connection, method, request, body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused or method not in IDEMPOTENT:
                    raise
            return self._exchange(self._open(), method, request, body)  # the kept one was stale: once more
        except urllib3.exceptions.HTTPError as e:  # raised by _open: the connection was never made
            problem = e
        except ssl.SSLError as e:
            problem = urllib3.exceptions.SSLError(f"TLS failed after connecting ({type(e).__name__})")
        except TimeoutError:
            problem = urllib3.exceptions.ReadTimeoutError(None, target, f"read timed out ({self._timeout:g} s)")  # type: ignore[arg-type]
        except (http.client.HTTPException, OSError) as e:
            problem = urllib3.exceptions.ProtocolError(f"Connection aborted ({type(e).__name__})")
        raise problem  # outside the except blocks: nothing of the exchange rides along as __context__

    def _head(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> bytes:
        sent = [*self._fixed, *headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            sent.append(("Content-Length", str(len(body or b""))))
        return http11.head(method, target, sent)

    def _exchange(self, connection: http11.Channel, method: str, request: bytes, body: bytes | None) -> Reply:
        try:
            answer = http11.exchange(connection, request, body, method=method)
        except BaseException:
            connection.close()
            raise
        if not self._kept.settle(VAULT, connection, will_close=answer.will_close):
            log.warning("vault.connection_discarded", reason="more concurrent readers than vault connections kept")
        return Reply(status_code=answer.status, headers=answer.headers, content=answer.content)

    def _take(self, *, resent_if_closed: bool) -> tuple[http11.Channel, bool]:
        kept = self._kept.take(VAULT, resent_if_closed=resent_if_closed)
        return (kept, True) if kept is not None else (self._open(), False)

    def _open(self) -> http11.Channel:
        """A connected channel; urllib3's exceptions for what urllib3 would have raised while connecting."""
        problem: urllib3.exceptions.HTTPError
        try:
            return http11.Channel.open(self._host, self._port, context=self._context, timeout=self._timeout)
        except ssl.SSLError as e:
            problem = urllib3.exceptions.SSLError(f"TLS handshake failed ({e.reason or type(e).__name__})")
        except TimeoutError:
            problem = urllib3.exceptions.ConnectTimeoutError(f"connect timed out ({self._timeout:g} s)")
        except OSError as e:
            problem = urllib3.exceptions.NewConnectionError(None, f"cannot connect ({type(e).__name__})")  # type: ignore[arg-type]
        raise problem

    def close(self) -> None:
        self._kept.close()


class Pool:
    """One urllib3 connection pool to the Vault address (through its proxy, if any), and how to address it.

    Without a proxy, requests go through ``direct`` (``Connections``) instead.
    """

    def __init__(self, address: str, *, route: Route, max_connections: int, timeout: float) -> None:
        """Raises ``OSError`` (``ssl.SSLError`` included) for a CA bundle that cannot be loaded, ``ConfigError`` for
        a proxy that cannot be used."""
        scheme = urllib3.util.parse_url(address).scheme or "http"
        options: dict[str, Any] = {"num_pools": 1, "maxsize": max_connections, "block": False}
        if scheme == "https":
            options["ssl_context"] = _tls_context(route.ca_bundle, client_cert=route.client_cert)
        self._manager = _manager(route.proxy, options)
        self.direct = (
            Connections(address, context=options.get("ssl_context"), max_connections=max_connections, timeout=timeout)
            if route.proxy is None
            else None
        )
        self.pool = self._manager.connection_from_url(address)
        # An HTTP proxy is sent the whole URL; a direct connection, a CONNECT tunnel or SOCKS just the path.
        self.absolute = route.proxy is not None and not route.proxy.startswith("socks") and scheme == "http"
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.headers = urllib3.util.make_headers(basic_auth=":".join(route.netrc)) if route.netrc else {}

    def close(self) -> None:
        self._manager.clear()
        if self.direct is not None:
            self.direct.close()


def _tls_context(bundle: str, *, client_cert: tuple[str, str | None] | None) -> ssl.SSLContext:
    context = create_urllib3_context()  # certificate and host name checks on, as urllib3 sets them
    if Path(bundle).is_dir():
        context.load_verify_locations(capath=bundle)
    else:
        context.load_verify_locations(cafile=bundle)
    if client_cert is not None:
        context.load_cert_chain(certfile=client_cert[0], keyfile=client_cert[1])
    return context


def _manager(proxy: str | None, options: dict[str, Any]) -> urllib3.PoolManager:
    """The pool manager for the route; a proxy urllib3 cannot use is a ``ConfigError`` naming only its scheme."""
    problem = ""
    try:
        return _proxied(proxy, options) if proxy else urllib3.PoolManager(**options)
    except (ImportError, urllib3.exceptions.HTTPError) as e:  # no PySocks for socks://; ftp://
        problem = type(e).__name__
    # Outside the except block. The proxy's URL may hold a login: only its scheme is named.
    scheme = urllib3.util.parse_url(proxy or "").scheme
    raise ConfigError(
        "vault",
        [
            ConfigIssue(
                "vault.address",
                f"the {scheme}:// proxy from the environment cannot be used ({problem}); check HTTP_PROXY, "
                "HTTPS_PROXY, ALL_PROXY and NO_PROXY (a socks proxy needs PySocks)",
            )
        ],
    )


def _proxied(proxy: str, options: dict[str, Any]) -> urllib3.PoolManager:
    if proxy.startswith("socks"):
        if importlib.util.find_spec("socks") is None:  # before urllib3's import warns about it
            raise ImportError("PySocks")
        from urllib3.contrib.socks import SOCKSProxyManager  # as requests' SOCKS support, it needs PySocks

        return SOCKSProxyManager(proxy, **options)
    parts = urllib3.util.parse_url(proxy)
    login = parts.auth and ":".join(unquote(part) for part in parts.auth.split(":", 1))
    headers = urllib3.util.make_headers(proxy_basic_auth=login) if login else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)


class VaultTransport(_Adapter):
    """hvac's adapter over a ``Pool``: give the class to ``hvac.Client(adapter=..., pool=...)``.

    hvac.Client passes its ``cert``, ``verify``, ``proxies``, ``session``, ``allow_redirects``
    and ``timeout`` to every adapter; the pool already holds the TLS, proxy and timeout
    settings, and redirects are never followed, so they are ignored here.
    """

    def __init__(self, *, base_uri: str, pool: Pool, token: str | None = None, namespace: str | None = None, **_: Any):
        self.base_uri = base_uri
        self.token = token
        self.namespace = namespace
        self.allow_redirects = False
        self.ignore_exceptions = False
        self.strict_http = False
        self.request_header = True
        self._pool = pool
        parts = urllib3.util.parse_url(base_uri)
        self._root = f"{parts.scheme}://{parts.netloc}"  # what an HTTP proxy is sent before the path
        self._prefix = (parts.path or "").strip("/")  # an address may carry a path

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    def get_login_token(self, response: Any) -> str:
        return str(response["auth"]["client_token"])

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> Any:
        """One request to Vault: a dict for a 200 with JSON, else a ``Reply``; hvac's errors for >= 400."""
        while "//" in url:  # as hvac does: Vault reads a double slash as one
            url = url.replace("//", "/")
        path = "/".join(part for part in (self._prefix, url.strip("/")) if part)
        target = f"/{path}{_query(kwargs.get('params'))}"
        reply = self._send(method.upper(), self._root + target if self._pool.absolute else target, headers, kwargs)
        if 300 <= reply.status_code < 400:
            raise Redirected(status=reply.status_code, location=reply.headers.get("Location", ""))
        if not reply.ok and raise_exception:
            _raise_for_error(method, f"{self._root}/{path}", reply)
        if reply.status_code == 200:  # JSONAdapter's rule: a dict only for a 200
            try:
                return reply.json()
            except ValueError:
                pass
        return reply

    def _send(self, method: str, target: str, headers: Mapping[str, str] | None, kwargs: Mapping[str, Any]) -> Reply:
        sent = self._headers(headers, wrap_ttl=kwargs.get("wrap_ttl"))
        body = None
        if kwargs.get("json") is not None:
            body = json.dumps(kwargs["json"], allow_nan=False).encode()
            sent["Content-Type"] = "application/json"
        if self._pool.direct is not None:
            return self._pool.direct.exchange(method, target, body=body, headers=sent)
        answer = self._pool.pool.urlopen(
            method,
            target,
            body=body,
            headers=sent,
            retries=False,  # requests' default too: no retry, no redirect
            redirect=False,
            assert_same_host=False,  # the pool of an HTTP proxy is the proxy's
            timeout=self._pool.timeout,
            preload_content=True,  # read the whole body, and the connection goes back to the pool
        )
        return Reply(status_code=answer.status, headers=answer.headers, content=answer.data)

    def _headers(self, given: Mapping[str, str] | None, *, wrap_ttl: object) -> dict[str, str]:
        headers = {**self._pool.headers, **(given or {}), "X-Vault-Request": "true"}
        if self.token:
            headers["X-Vault-Token"] = self.token
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        if wrap_ttl:
            headers["X-Vault-Wrap-TTL"] = str(wrap_ttl)
        return headers


def _query(params: Mapping[str, Any] | None) -> str:
    """requests' encoding of ``params``: None values dropped, lists repeated."""
    if not params:
        return ""
    pairs = [
        (key, item)
        for key, value in params.items()
        for item in (value if isinstance(value, list | tuple) else [value])
        if item is not None
    ]
    return f"?{urlencode(pairs)}" if pairs else ""


def _raise_for_error(method: str, url: str, reply: Reply) -> None:
    """hvac's ``RawAdapter._raise_for_error``: the JSON errors when the body is JSON, else the text."""
    errors = body = None
    if reply.headers.get("Content-Type", "") == "application/json":
        try:
            body = reply.json()
        except ValueError:
            pass
        else:
            errors = body.get("errors") if isinstance(body, dict) else None
    hvac.utils.raise_for_error(
        method,
        url,
        reply.status_code,
        None if errors is not None else reply.text,
        errors=errors,
        text=reply.text,
        json=body,
    )
