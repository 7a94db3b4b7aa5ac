"""hvac and urllib3 exceptions, translated into ``service.errors`` at the adapter boundary.

The translated error names the Vault address, kind, mount and path, and says what to do.
The callers raise the translated error *after* their ``except`` block, so it carries the
library exception neither as ``__cause__`` nor as ``__context__``: hvac's exceptions hold
the response body, and urllib3's hold the connection pool (``transport.py``) whose
frames saw ``X-Vault-Token``.
"""

from __future__ import annotations

import hvac.exceptions
import urllib3.exceptions

from service.errors import (
    SourceError,
    SourceNotFound,
    VaultAuthError,
    VaultPermissionDenied,
    VaultSealed,
    VaultUnavailable,
)
from service.vault.mapping import Location
from service.vault.transport import Redirected

# Errors raised by hvac and the HTTP stack under it (urllib3, a redirect we do not follow).
# OSError covers a CA bundle that cannot be loaded.
LIBRARY_ERRORS = (hvac.exceptions.VaultError, urllib3.exceptions.HTTPError, Redirected, OSError)

# NewConnectionError (DNS, refused) is a ConnectTimeoutError to urllib3: it is checked first.
_NOT_CONNECTED = (
    urllib3.exceptions.ProxyError,  # the proxy refused or could not be reached
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ProtocolError,  # the connection was dropped (reset, closed mid-answer)
    urllib3.exceptions.ClosedPoolError,
)

_SERVER_TROUBLE = (
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.VaultNotInitialized,
)

_STATUS = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def status_of(error: hvac.exceptions.VaultError) -> str:
    """The HTTP status behind an hvac exception, as text; hvac keeps no number for statuses it does not map."""
    status = _STATUS.get(type(error))
    return f"HTTP {status}" if status else "an HTTP status hvac does not map, e.g. 405"


def translate(error: BaseException, *, at: Location, address: str) -> SourceError:
    """The service error for a failed read of ``at`` (the caller raises it outside its ``except``)."""
    if isinstance(error, hvac.exceptions.Forbidden):
        return permission_denied(at)
    if isinstance(error, hvac.exceptions.InvalidPath):
        return not_found(error, at=at)
    if isinstance(error, hvac.exceptions.VaultError):
        return server_refused(error, at=at, address=address)
    return unreachable(error, address=address)


def unreachable(error: BaseException, *, address: str) -> VaultUnavailable:
    """Vault could not be asked: TLS, timeout, connection, a redirect, or a bad CA bundle."""
    if isinstance(error, Redirected):
        return VaultUnavailable(
            f"Vault at {address} answered with a redirect ({error}), which is not followed (the token would go "
            "along): set vault.address to the node that serves, e.g. the active node or its load balancer"
        )
    if isinstance(error, _NOT_CONNECTED):
        return VaultUnavailable(f"cannot connect to Vault at {address}; check vault.address, DNS and the network")
    if isinstance(error, urllib3.exceptions.SSLError):
        return VaultUnavailable(
            f"TLS verification failed for Vault at {address}: set vault.ca_cert to the CA bundle "
            "that signed its certificate (and check that the address matches the certificate)"
        )
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return VaultUnavailable(f"Vault at {address} did not answer in time; check the server or raise vault.timeout")
    if isinstance(error, OSError):
        return VaultUnavailable(f"cannot use the TLS settings for Vault at {address}: is vault.ca_cert readable?")
    return VaultUnavailable(f"request to Vault at {address} failed ({type(error).__name__})")


def server_refused(error: hvac.exceptions.VaultError, *, at: Location, address: str) -> SourceError:
    """Vault answered, but not with the secret: sealed, overloaded, or refusing the request."""
    status = status_of(error)
    if isinstance(error, hvac.exceptions.VaultDown):
        return VaultSealed(
            f"Vault at {address} is sealed or a standby that cannot serve (503); unseal it, "
            "or point vault.address at the active node or its load balancer",
            mount=at.mount,
            path=at.path,
        )
    if isinstance(error, _SERVER_TROUBLE):
        return VaultUnavailable(
            f"Vault at {address} failed to serve {at.describe()} ({status}); retry later and check the server log",
            mount=at.mount,
            path=at.path,
        )
    return SourceError(
        f"Vault refused the request for {at.describe()} ({status}); check the source kind "
        "(kv2, kv1 or dynamic) and the path (for a dynamic engine: does the role exist?)",
        mount=at.mount,
        path=at.path,
    )


def permission_denied(at: Location) -> VaultPermissionDenied:
    """A 403 on a valid token: the policy lacks "read" on the path (``<mount>/data/<path>`` for KV v2)."""
    kv2 = " (KV v2 reads go through data/)" if at.kind == "kv2" else ""
    return VaultPermissionDenied(
        f"permission denied reading {at.describe()}: the Vault policy of this identity needs "
        f'capability "read" on path "{at.policy_path}"{kv2}',
        mount=at.mount,
        path=at.path,
        policy_path=at.policy_path,
    )


def not_found(error: hvac.exceptions.InvalidPath, *, at: Location) -> SourceNotFound:
    """A 404: no such mount, the wrong KV version for the mount, or no secret (version) at the path."""
    body = error.json if isinstance(error.json, dict) else {}
    errors = " ".join(str(item) for item in body.get("errors") or ())
    warnings = " ".join(str(item) for item in body.get("warnings") or ())
    if "no handler for route" in errors:
        hint = f"no secrets engine is mounted at {at.mount}/; check the mount"
    elif "versioned K/V" in warnings:
        hint = f'{at.mount}/ is a KV v2 mount; set kind = "kv2"'
    elif at.version is not None:
        hint = f"version {at.version} does not exist; pin an existing version or remove source.version"
    else:
        hint = "nothing is stored there; check the path (KV v2 paths are given without data/) and the kind"
    return SourceNotFound(f"{at.describe()} not found: {hint}", mount=at.mount, path=at.path)


def login_refused(error: BaseException, *, method: str, mount: str, address: str) -> SourceError:
    """The service error for a failed login with auth ``method`` at ``auth/<mount>``."""
    if not isinstance(error, hvac.exceptions.VaultError):
        return unreachable(error, address=address)
    if isinstance(error, (hvac.exceptions.VaultDown, *_SERVER_TROUBLE)):
        return server_refused(error, at=Location(kind="auth", mount="auth", path=mount), address=address)
    return VaultAuthError(
        f"Vault at {address} refused the {method} login at auth/{mount} ({status_of(error)}); "
        f"{_LOGIN_HINTS.get(method, 'check the credentials')}",
        mount=f"auth/{mount}",
    )


_LOGIN_HINTS = {
    "token": "the token is invalid, expired or revoked: give the service a valid token",
    "approle": "check vault.auth.role_id, the secret id (expired or used up?) and the auth mount",
    "jwt": "check vault.auth.role, the JWT (expired, audience, issuer, signing key) and the auth mount",
    "kubernetes": "check vault.auth.role, the service account bound to it, the token file and the auth mount",
}
