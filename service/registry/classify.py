"""Classify what a registry (or the network) answered into a verification outcome (pure).

| what happened                                                  | outcome                |
|----------------------------------------------------------------|------------------------|
| 2xx from ``/v2/`` or the canary manifest, with the credential  | ok                     |
| 401 after authenticating, token endpoint 401 / 403             | auth_failed            |
| 401 ``error="insufficient_scope"`` or 403 on the canary        | scope_denied           |
| connect error, DNS failure, timeout, TLS failure, lost socket  | registry_unreachable   |
| anything else (5xx, 404, 429, protocol error, odd answers)     | unexpected             |

Details are short phrases of our own plus values from a fixed shape (status codes, the
challenge's ``error`` token, OpenSSL's verification reason): never a response body or a
header value.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from service.logs import MASK, redact_text
from service.model import VerificationOutcome, VerificationResult

if TYPE_CHECKING:
    from service.model import VerifyPolicy

_ERROR_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_TIMEOUT_KINDS = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "connection pool",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """An outcome with its (not yet sanitised) detail and the HTTP status that led to it."""

    outcome: VerificationOutcome
    detail: str
    status: int | None = None


def ok(detail: str, status: int | None = None) -> Finding:
    return Finding(VerificationOutcome.OK, detail, status)


def unexpected(detail: str, status: int | None = None) -> Finding:
    return Finding(VerificationOutcome.UNEXPECTED, detail, status)


def _unreachable(detail: str) -> Finding:
    return Finding(VerificationOutcome.REGISTRY_UNREACHABLE, detail)


def classify_transport_error(error: httpx.HTTPError | httpx.InvalidURL) -> Finding:
    """A request that got no HTTP answer: which network failure it was, in words."""
    causes = list(_causes(error))
    return _tls_finding(causes) or _timeout_finding(error) or _network_finding(error, causes)


def _timeout_finding(error: Exception) -> Finding | None:
    for kind, label in _TIMEOUT_KINDS.items():
        if isinstance(error, kind):
            return _unreachable(f"timed out ({label})")
    return None


def _network_finding(error: Exception, causes: list[BaseException]) -> Finding:
    if any(isinstance(cause, socket.gaierror) for cause in causes):
        return _unreachable("DNS lookup failed")
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return _unreachable("connection refused")
    if isinstance(error, httpx.ConnectError):
        return _unreachable("could not connect")
    if isinstance(error, httpx.NetworkError):
        return _unreachable("connection lost")
    if isinstance(error, httpx.ProtocolError):
        return unexpected("the server does not speak HTTP as expected")
    return unexpected(f"request failed ({type(error).__name__})")


def _tls_finding(causes: list[BaseException]) -> Finding | None:
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or "certificate rejected"
            return _unreachable(f"TLS verification failed: {reason}")
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return _unreachable(f"TLS handshake failed: {cause.reason or 'unknown reason'}")
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and every exception it was raised from, oldest last (cycles cut)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_token_status(status: int) -> Finding | None:
    """None when the token endpoint granted a token; otherwise why verification stops."""
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return Finding(VerificationOutcome.AUTH_FAILED, f"the token endpoint refused the credential ({status})", status)
    return unexpected(f"the token endpoint answered {status}", status)


def classify_answer(status: int, *, error: str | None = None, canary: str | None = None) -> Finding:
    """The registry's answer to an authenticated ``GET /v2/`` (``canary`` None) or canary manifest ``HEAD``."""
    if 200 <= status < 300:
        return ok(f"the registry allowed {_what(canary)}", status)
    if status == 401:
        return _refused(error, canary)
    if status == 403:
        return _forbidden(canary)
    if status == 404 and canary:
        return unexpected(f"no manifest {canary} (check verify.canary_repository)", status)
    return unexpected(f"the registry answered {status} to {_what(canary)}", status)


def _refused(error: str | None, canary: str | None) -> Finding:
    if error == "insufficient_scope":
        return Finding(VerificationOutcome.SCOPE_DENIED, f"the credential may not {_verb(canary)} ({error})", 401)
    return Finding(VerificationOutcome.AUTH_FAILED, f"the registry refused the credential{_because(error)}", 401)


def _forbidden(canary: str | None) -> Finding:
    if canary:
        return Finding(VerificationOutcome.SCOPE_DENIED, f"the registry denied {_what(canary)} (403)", 403)
    return Finding(VerificationOutcome.AUTH_FAILED, "the registry forbids this account (403)", 403)


def _what(canary: str | None) -> str:
    return f"pull of {canary}" if canary else "the v2 API"


def _verb(canary: str | None) -> str:
    return f"pull {canary}" if canary else "use the v2 API"


def _because(error: str | None) -> str:
    return f" ({error})" if error and _ERROR_TOKEN_RE.match(error) else ""


def sanitise(text: str, *secrets: str) -> str:
    """Mask every given secret, then every credential-shaped string."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact_text(text)


def result_of(finding: Finding, *, registry: str, secrets: tuple[str, ...]) -> VerificationResult:
    """The port's result: the finding with its detail sanitised."""
    return VerificationResult(finding.outcome, registry, sanitise(finding.detail, *secrets), finding.status)


def permits_write(result: VerificationResult, *, policy: VerifyPolicy) -> bool:
    """Whether the PATCH may go ahead: ok or skipped; unreachable only with ``on_unreachable = "proceed"``."""
    if result.ok:
        return True
    return result.outcome == VerificationOutcome.REGISTRY_UNREACHABLE and policy.on_unreachable == "proceed"
