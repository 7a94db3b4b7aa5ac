"""Turn AI Core error responses into ``service.errors`` classes that are safe to log.

An error carries the HTTP status, AI Core's ``error.code``, the request id (``error.requestId``
or a request-id response header), the target and the secret. Its message may quote AI
Core's ``error.message``, but only after ``redact_text``, after masking every value the
caller names as secret (the credential, the client secret, the token), and cut to
``MESSAGE_LIMIT`` characters. Never a body, never a header.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from service.errors import (
    AICoreError,
    BadRequest,
    Forbidden,
    RateLimited,
    SecretNotFound,
    Unauthorized,
    Unavailable,
)
from service.logs import MASK, redact_text
from service.model import DockerConfigJson

MESSAGE_LIMIT = 200
REQUEST_ID_HEADERS = ("x-request-id", "x-correlationid", "x-correlation-id", "x-vcap-request-id")
EDITOR_ROLE = "aicore_admin_dockerregistrysecret_editor"
_NOT_SECRET_KEYS = frozenset({"username", "email", "serveraddress"})


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """What an error response says, already sanitised."""

    code: str | None = None
    message: str | None = None
    request_id: str | None = None


def transport_failure(error: httpx.HTTPError) -> str:
    """What went wrong on the wire, in words safe to log (no URL query, header or body)."""
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    causes = _causes(error)
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes):
        return "failed TLS verification (is the server's CA trusted?)"
    if any(isinstance(cause, ssl.SSLError) for cause in causes):
        return "failed the TLS handshake (client certificate refused?)"
    return f"could not be completed ({type(error).__name__})"


# Failures that happen before a request leaves: it cannot have reached AI Core.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol, httpx.ProxyError)


def sent_before_failing(error: httpx.HTTPError) -> bool:
    """Whether the request may have reached the server: a read timeout or a connection lost mid-exchange."""
    return not isinstance(error, _NOT_SENT)


def _causes(error: BaseException) -> list[BaseException]:
    """httpx wraps httpcore, which wraps the socket or ssl error: walk a few links down."""
    chain: list[BaseException] = []
    link = error.__cause__ or error.__context__
    while link is not None and len(chain) < 5:
        chain.append(link)
        link = link.__cause__ or link.__context__
    return chain


def request_id(response: httpx.Response) -> str | None:
    """The request id a response header names, if any (the first of ``REQUEST_ID_HEADERS`` that has one).

    One pass over the headers: ``Headers.get`` walks all of them for each name asked. Repeated
    headers are joined with ", ", as ``Headers.get`` joins them.
    """
    found: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        if name in REQUEST_ID_HEADERS:
            found.setdefault(name, []).append(value)
    for header in REQUEST_ID_HEADERS:
        value = ", ".join(found.get(header, ()))
        if value:
            return value[:128]
    return None


def error_detail(response: httpx.Response, *, conceal: Iterable[str]) -> ErrorDetail:
    """Read ``{"error": {"code", "message", "requestId"}}``; tolerate any other body."""
    error = _error_object(response)
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    body_id = error.get("requestId") if isinstance(error.get("requestId"), str) else None
    return ErrorDetail(
        code=sanitise(code, conceal=conceal, limit=64) if code else None,
        message=sanitise(message, conceal=conceal) if message else None,
        request_id=sanitise(body_id, conceal=conceal, limit=128) if body_id else request_id(response),
    )


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def sanitise(text: str, *, conceal: Iterable[str], limit: int = MESSAGE_LIMIT) -> str:
    """Mask credential shapes and the given values, flatten to one line, cut to ``limit`` characters."""
    for value in sorted(conceal, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, MASK)
    text = " ".join(redact_text(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def concealed_values(config: DockerConfigJson | None) -> list[str]:
    """The whole ``.dockerconfigjson`` and every secret-looking string inside it (passwords, auth)."""
    if config is None:
        return []
    value = config.reveal()
    try:
        parsed = json.loads(value)
    except ValueError:
        return [value]
    return [value, *_leaf_strings(parsed)]


def _leaf_strings(node: Any, key: str = "") -> list[str]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaf_strings(v, str(k))]
    if isinstance(node, list):
        return [leaf for item in node for leaf in _leaf_strings(item, key)]
    if isinstance(node, str) and key.lower() not in _NOT_SECRET_KEYS:
        return [node]
    return []


def error_for(
    *,
    status: int,
    detail: ErrorDetail,
    target: str,
    secret: str,
    action: str,
    attempts: int = 1,
) -> AICoreError:
    """The ``service.errors`` class and message for an error status; fields carry what support needs."""
    cls, text = _describe(status=status, target=target, secret=secret, action=action, attempts=attempts)
    facts = [f"HTTP {status}"]
    if detail.code:
        facts.append(f"code {detail.code}")
    if detail.request_id:
        facts.append(f"request id {detail.request_id}")
    message = f"{text} ({', '.join(facts)})"
    if detail.message:
        message += f"; AI Core says: {detail.message}"
    return cls(
        message,
        target=target,
        secret=secret,
        status=status,
        aicore_code=detail.code,
        request_id=detail.request_id,
    )


_BY_STATUS: dict[int, tuple[type[AICoreError], str]] = {
    401: (
        Unauthorized,
        "AI Core refused the access token for the {subject}, even after fetching a new one: "
        "is the service key for this AI Core instance?",
    ),
    403: (
        Forbidden,
        "this identity may not edit Docker registry secrets ({subject}): "
        f"give the service key's identity the {EDITOR_ROLE} role",
    ),
    404: (
        SecretNotFound,
        "secret {secret!r} does not exist on target {target!r}: create it first (names cannot change), "
        "or set create_missing for this secret",
    ),
    429: (RateLimited, "AI Core kept rate limiting the {subject}{tries}"),
}
_NO_ENDPOINT = (BadRequest, "AI Core has no endpoint for the {subject}: check the service key's serviceurls.AI_API_URL")
_SERVER_ERROR = (Unavailable, "AI Core failed the {subject}{tries}")
_CLIENT_ERROR = (BadRequest, "AI Core refused the {subject} as a bad request")
_UNEXPECTED = (AICoreError, "AI Core answered the {subject} with an unexpected status")


def _template(status: int, *, secret: str) -> tuple[type[AICoreError], str]:
    if status == 404 and not secret:
        return _NO_ENDPOINT
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return _SERVER_ERROR
    return _CLIENT_ERROR if 400 <= status < 500 else _UNEXPECTED


def _describe(*, status: int, target: str, secret: str, action: str, attempts: int) -> tuple[type[AICoreError], str]:
    cls, template = _template(status, secret=secret)
    subject = f"{action} of secret {secret!r} on target {target!r}" if secret else f"{action} on target {target!r}"
    tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    return cls, template.format(subject=subject, secret=secret, target=target, tries=tries)
