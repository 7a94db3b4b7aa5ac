"""XSUAA access tokens for one target: OAuth2 client credentials, cached and shared.

Client-secret keys post ``grant_type=client_credentials`` with ``client_id`` and
``client_secret`` in the form body. X.509 keys post the same form with ``client_id``
only, to the key's ``certurl``; the ``httpx.Client`` given here carries the client
certificate (see ``tls.tls_context``). A token is reused until ``refresh_margin``
seconds before its ``expires_in`` runs out (at most half its lifetime, so short-lived
tokens are not fetched on every call). Concurrent callers share one fetch.

Failures: XSUAA refusing the client (any 4xx, or a 2xx without a token) raises
``AICoreAuthError``; a timeout, connection error, 429 or 5xx raises ``Unavailable``.
Neither carries the response body, the client secret or the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from service.aicore.responses import transport_failure
from service.aicore.servicekey import ServiceKey
from service.errors import AICoreAuthError, Unavailable
from service.logs import get_logger

log = get_logger("rotator.aicore")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # on the provider's clock


class TokenProvider:
    """One target's bearer token: ``token()`` fetches or reuses it, ``invalidate()`` drops it."""

    def __init__(
        self,
        *,
        key: ServiceKey,
        http: httpx.Client,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 60.0,
        target: str = "",
    ) -> None:
        self._key = key
        self._http = http
        self._clock = clock
        self._margin = refresh_margin
        self._target = target
        self._lock = threading.Lock()
        self._current: _Token | None = None

    def token(self) -> str:
        """A valid access token; fetched from XSUAA only when none is cached or it is due."""
        with self._lock:
            current = self._current
            if current is None or self._clock() >= current.refresh_at:
                current = self._fetch()
                self._current = current
            return current.value

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given: one refresh per 401 wave)."""
        with self._lock:
            if self._current is not None and (token is None or self._current.value == token):
                self._current = None

    def close(self) -> None:
        """Close the HTTP client the tokens are fetched with."""
        self._http.close()

    def _fetch(self) -> _Token:
        started = self._clock()
        response = self._post()
        token, expires_in = self._parse(response)
        lifetime = max(expires_in, 0)
        refresh_at = started + lifetime - min(self._margin, lifetime / 2)
        log.info("aicore.token.fetched", target=self._target, mtls=self._key.mtls, expires_in=expires_in)
        return _Token(token, refresh_at)

    def _post(self) -> httpx.Response:
        form = {"grant_type": "client_credentials", "client_id": self._key.client_id}
        if self._key.client_secret is not None:
            form["client_secret"] = self._key.client_secret
        try:
            response = self._http.post(self._key.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise self._unavailable(transport_failure(e)) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise self._unavailable(f"answered HTTP {response.status_code}", status=response.status_code)
        if response.status_code >= 400:
            raise self._refused(f"refused the client credentials (HTTP {response.status_code})", response.status_code)
        return response

    def _parse(self, response: httpx.Response) -> tuple[str, int]:
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self._refused(
                "answered without an access_token (is the service key's url right?)", response.status_code
            )
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            raise self._refused("answered without a numeric expires_in", response.status_code)
        return token, int(expires_in)

    def _unavailable(self, what: str, *, status: int | None = None) -> Unavailable:
        return Unavailable(
            f"target {self._target!r}: XSUAA token endpoint {self._key.token_url} {what}",
            target=self._target,
            status=status,
        )

    def _refused(self, what: str, status: int) -> AICoreAuthError:
        return AICoreAuthError(
            f"target {self._target!r}: XSUAA {self._key.token_url} {what}; check the service key's "
            f"clientid and {'certificate' if self._key.mtls else 'clientsecret'}",
            target=self._target,
            status=status,
        )
