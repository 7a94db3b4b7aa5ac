"""The spec's rules for Docker registry secret requests, as pure functions.

Each check either returns the parsed value or raises ``Refusal`` (status, AI Core-style
error code, message). Messages name fields and rules, never a submitted value: the
real service never echoes the secret data either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

# The spec's name pattern ^[a-z0-9](?:_?[a-z0-9\.\-]+)*[a-z0-9]$ in its linear-time form
# (same language; the spec's form backtracks exponentially on long refused names).
NAME_RE = re.compile(r"[a-z0-9](?:_?[a-z0-9.\-])*[a-z0-9]")
NAME_MAX = 63
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
CREATE_TYPES = frozenset({JSON})
PATCH_TYPES = frozenset({JSON, MERGE_PATCH})
DOCKERCONFIGJSON = ".dockerconfigjson"


class Refusal(Exception):
    """An error answer of the emulated API."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.body = body  # replaces the AI Core error shape (XSUAA answers differ)


def check_name(name: str) -> str:
    """A Docker registry secret name as the spec's pattern and maxLength allow it."""
    if len(name) > NAME_MAX:
        raise Refusal(400, "InvalidName", f"name must be at most {NAME_MAX} characters")
    if not NAME_RE.fullmatch(name):
        raise Refusal(400, "InvalidName", "name must match ^[a-z0-9](?:_?[a-z0-9\\.\\-]+)*[a-z0-9]$")
    return name


def media_type(header: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return (header or "").split(";", 1)[0].strip().lower()


def check_content_type(header: str | None, *, allowed: frozenset[str]) -> None:
    if media_type(header) not in allowed:
        raise Refusal(415, "UnsupportedMediaType", f"Content-Type must be one of {', '.join(sorted(allowed))}")


def json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "BadRequest", "Neither JSON nor YAML was able to be parsed") from None
    if not isinstance(body, dict):
        raise Refusal(400, "BadRequest", "the request body must be a JSON object")
    return body


def dockerconfigjson(body: Mapping[str, Any]) -> str:
    """``data`` holding exactly ``.dockerconfigjson``, a string that parses as JSON."""
    data = body.get("data")
    if not isinstance(data, dict):
        raise Refusal(400, "BadRequest", "data is required and must be an object")
    if set(data) != {DOCKERCONFIGJSON}:
        raise Refusal(400, "BadRequest", "data must hold exactly one key, .dockerconfigjson")
    value = data[DOCKERCONFIGJSON]
    if not isinstance(value, str):
        raise Refusal(400, "BadRequest", "data..dockerconfigjson must be a string")
    try:
        json.loads(value)
    except ValueError:
        raise Refusal(400, "BadRequest", "data..dockerconfigjson is not valid JSON") from None
    return value


def create_request(raw: bytes, *, content_type: str | None) -> tuple[str, str]:
    """POST body -> (name, .dockerconfigjson)."""
    check_content_type(content_type, allowed=CREATE_TYPES)
    body = json_object(raw)
    name = body.get("name")
    if not isinstance(name, str):
        raise Refusal(400, "BadRequest", "name is required and must be a string")
    return check_name(name), dockerconfigjson(body)


def patch_request(raw: bytes, *, content_type: str | None) -> str:
    """PATCH body -> .dockerconfigjson."""
    check_content_type(content_type, allowed=PATCH_TYPES)
    return dockerconfigjson(json_object(raw))


def list_window(query: Mapping[str, Sequence[str]]) -> tuple[int | None, int, bool]:
    """``$top``, ``$skip`` (integers >= 0) and ``$count`` (boolean) of a list request."""
    top = _non_negative(query, "$top")
    skip = _non_negative(query, "$skip")
    return top, skip or 0, _boolean(query, "$count")


def quota_only(query: Mapping[str, Sequence[str]]) -> bool:
    return _boolean(query, "quotaOnly")


def _non_negative(query: Mapping[str, Sequence[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    text = values[-1]
    if not text.isascii() or not text.isdigit():
        raise Refusal(400, "BadRequest", f"{name} must be an integer >= 0")
    return int(text)


def _boolean(query: Mapping[str, Sequence[str]], name: str) -> bool:
    values = query.get(name)
    if not values:
        return False
    text = values[-1].lower()
    if text not in ("true", "false"):
        raise Refusal(400, "BadRequest", f"{name} must be true or false")
    return text == "true"
