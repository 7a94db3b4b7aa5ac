"""The service's own Vault identity: log in, keep the token alive for months, revoke it at the end.

``VaultSession`` is shared by every thread of the worker. Logins and renewals happen under
one lock; reads run concurrently. A read refused with 403 on a token that lookup-self no
longer accepts (revoked or expired) logs in again, once, and retries; the login happens
once however many threads saw the refusal (a login generation counter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions

from service.config import VaultAuthConfig, VaultConfig
from service.errors import ConfigError, ConfigIssue, SourceError
from service.logs import get_logger
from service.vault.auth import ReadLocal, login
from service.vault.mapping import Location
from service.vault.renewal import Step, TokenLease, next_step, renewed
from service.vault.translate import LIBRARY_ERRORS, permission_denied, translate, unreachable
from service.vault.transport import Pool, Route, VaultTransport

T = TypeVar("T")

log = get_logger("rotator.vault")

_LOOKUP_SELF = Location(kind="token", mount="auth/token", path="lookup-self")
_RENEW_SELF = Location(kind="token", mount="auth/token", path="renew-self")
DEFAULT_MAX_CONNECTIONS = 10  # requests' default, kept
_RENEW_REFUSED = (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest)


class _TokenRejected(Exception):
    """Internal: Vault refused our token itself (revoked or expired), not the path."""


class VaultSession:
    """A logged-in ``hvac.Client`` whose token is renewed, replaced and finally revoked."""

    def __init__(
        self,
        *,
        client: hvac.Client,
        auth: VaultAuthConfig,
        read_local: ReadLocal,
        clock: Callable[[], float] = time.monotonic,
        renew_at_fraction: float = 0.67,
    ) -> None:
        self._client = client
        self._auth = auth
        self._read_local = read_local
        self._clock = clock
        self._fraction = renew_at_fraction
        self._lock = threading.RLock()
        self._lease: TokenLease | None = None
        self._generation = 0  # grows at every login

    @property
    def address(self) -> str:
        return str(self._client.url)

    def login(self) -> None:
        """Log in with the configured method. Raises ``VaultAuthError``, ``VaultUnavailable``, ``VaultSealed``."""
        with self._lock:
            self._login_locked(reason="start")

    def maintain(self) -> None:
        """Renew the token when due; log in again when it cannot be renewed. Call it every few seconds."""
        with self._lock:
            step = next_step(self._lease, now=self._clock(), fraction=self._fraction)
            if step is Step.RENEW:
                self._renew_locked()
            elif step is Step.LOGIN:
                self._login_locked(reason="expiring" if self._lease else "no_token")

    def revoke(self) -> None:
        """Revoke a token we logged in for (at shutdown). Never raises; a supplied token is left alone."""
        with self._lock:
            if self._lease is None:
                return
            if self._auth.method == "token":
                log.info("vault.revoke.skipped", method="token", reason="supplied token, not ours to revoke")
                return
            try:
                self._client.auth.token.revoke_self()
            except Exception as e:  # noqa: BLE001 (shutdown must go on; the class name is enough)
                log.warning("vault.revoke.failed", method=self._auth.method, error=type(e).__name__)
            else:
                log.info("vault.revoke", method=self._auth.method, mount=self._auth.mount_path)
            self._lease = None
            self._client.token = ""  # hvac sends no X-Vault-Token header for an empty token

    def close(self) -> None:
        """Revoke our token and close the HTTP connections."""
        self.revoke()
        self._client.adapter.close()

    def token_expires_at(self) -> float | None:
        """Wall-clock epoch seconds when the token expires; None without a TTL or before login."""
        lease = self._lease
        if lease is None or lease.expires_at is None:
            return None
        return time.time() + (lease.expires_at - self._clock())

    def check(self) -> None:
        """Ask Vault whether our token is valid (lookup-self), logging in again if it was revoked."""
        self.request(lambda client: client.auth.token.lookup_self(), at=_LOOKUP_SELF)

    def request(self, call: Callable[[hvac.Client], T], *, at: Location) -> T:
        """Run one Vault request; errors come back translated. Re-login once on a rejected token."""
        generation = self._generation
        try:
            return self._attempt(call, at, generation=generation)
        except _TokenRejected:
            pass
        self._relogin_after(generation)
        try:
            return self._attempt(call, at, generation=self._generation)
        except _TokenRejected:
            pass
        raise permission_denied(at)

    def _attempt(self, call: Callable[[hvac.Client], T], at: Location, *, generation: int) -> T:
        failure: SourceError | None
        try:
            return call(self._client)
        except hvac.exceptions.Forbidden:
            failure = None  # decided below, outside the except block
        except LIBRARY_ERRORS as e:
            failure = translate(e, at=at, address=self.address)
        if failure is not None:
            raise failure  # outside the except block: the library exception is not even its __context__
        if self._token_rejected(generation):
            raise _TokenRejected
        raise permission_denied(at)

    def _token_rejected(self, generation: int) -> bool:
        """After a 403: was it our token (revoked, expired, or replaced by another thread's login)?"""
        if self._generation != generation:
            return True  # another thread logged in meanwhile: the 403 may be the old token's
        valid = self._token_valid()
        return not valid or self._generation != generation

    def _token_valid(self) -> bool:
        failure: SourceError
        try:
            self._client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return False
        except LIBRARY_ERRORS as e:
            failure = translate(e, at=_LOOKUP_SELF, address=self.address)
        else:
            return True
        raise failure

    def _relogin_after(self, generation: int) -> None:
        with self._lock:
            if self._generation == generation:  # nobody logged in since this request started
                self._login_locked(reason="token_rejected")

    def _login_locked(self, *, reason: str) -> None:
        self._lease = login(self._client, auth=self._auth, read_local=self._read_local, now=self._clock())
        self._generation += 1
        log.info(
            "vault.login",
            method=self._auth.method,
            mount=self._auth.mount_path,
            reason=reason,
            ttl_s=self._lease.ttl,
            renewable=self._lease.renewable,
        )

    def _renew_locked(self) -> None:
        assert self._lease is not None
        granted = self._renew_self()
        if granted is None:
            log.info("vault.renew.refused", method=self._auth.method)
            self._login_locked(reason="renewal_refused")
            return
        self._lease = renewed(
            self._lease,
            granted=float(granted.get("lease_duration") or 0),
            renewable=bool(granted.get("renewable")),
            now=self._clock(),
        )
        log.info("vault.renew", method=self._auth.method, ttl_s=self._lease.ttl, capped=self._lease.capped)

    def _renew_self(self) -> Mapping[str, Any] | None:
        """renew-self's auth block, or None when Vault refuses to renew (revoked, not renewable)."""
        failure: SourceError
        try:
            granted: Mapping[str, Any] = self._client.auth.token.renew_self()["auth"]
        except _RENEW_REFUSED:
            return None
        except LIBRARY_ERRORS as e:
            failure = translate(e, at=_RENEW_SELF, address=self.address)
        else:
            return granted
        raise failure  # outside the except block: the library exception is not even its __context__


def connect(
    config: VaultConfig, *, read_local: ReadLocal, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> VaultSession:
    """Build the hvac client (address, namespace, CA bundle, timeout, pool size) and log in."""
    session = VaultSession(
        client=vault_client(config, max_connections=max_connections),
        auth=config.auth,
        read_local=read_local,
        renew_at_fraction=config.renew_at_fraction,
    )
    try:
        session.login()
    except BaseException:
        session.close()  # no half-built session keeps its connection pool
        raise
    return session


def vault_client(config: VaultConfig, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> hvac.Client:
    """An hvac client (not logged in) whose requests go through our urllib3 transport (``transport.py``)."""
    pool = _pool(config, max_connections=max_connections)
    return hvac.Client(url=config.address, namespace=config.namespace, adapter=VaultTransport, pool=pool)


def _pool(config: VaultConfig, *, max_connections: int) -> Pool:
    """Up to ``max_connections`` connections to Vault, one per concurrent reader (more are opened and discarded).

    What requests would read from the environment on every request (``*_PROXY`` and
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, ``~/.netrc``) is read once here,
    for Vault's address (``Route.from_environment``). Every request goes to that address.
    """
    route = Route.from_environment(config.address, ca_cert=_verify(config.ca_cert))
    failure: SourceError
    try:
        return Pool(
            config.address, route=route, max_connections=max_connections, timeout=config.timeout.total_seconds()
        )
    except OSError as e:  # the CA bundle cannot be read or holds no certificate
        failure = unreachable(e, address=config.address)
    raise failure  # outside the except block: the library exception is not even its __context__


def _verify(ca_cert: Path | None) -> str | None:
    if ca_cert is None:
        return None
    if not ca_cert.is_file():
        raise ConfigError("vault", [ConfigIssue("vault.ca_cert", f"CA bundle {ca_cert} does not exist or is no file")])
    return str(ca_cert)
