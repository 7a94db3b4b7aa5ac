"""Parse an AI Core service key (the JSON that SAP BTP hands out). Pure; no I/O.

Two variants: client secret (``clientid``, ``clientsecret``, ``url``) and X.509
(``clientid``, ``certificate``, ``key``, ``certurl``). Both carry
``serviceurls.AI_API_URL``. Errors name the missing or malformed field, never a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from service.errors import ConfigIssue
from service.model import MASK
from service.transport import cleartext_rule, is_http


class ServiceKeyError(ValueError):
    """A service key that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class ServiceKey:
    client_id: str
    api_url: str  # serviceurls.AI_API_URL, without a trailing slash
    auth_url: str  # XSUAA base: `url`, or `certurl` for X.509 keys
    client_secret: str | None = field(default=None, repr=False)
    certificate: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    identity_zone: str | None = None

    @property
    def mtls(self) -> bool:
        return self.certificate is not None

    @property
    def token_url(self) -> str:
        return f"{self.auth_url}/oauth/token"

    @property
    def api_host(self) -> str:
        return self.api_url.split("://", 1)[-1].split("/", 1)[0]

    def __repr__(self) -> str:
        kind = "x509" if self.mtls else "client-secret"
        return f"ServiceKey(client_id={self.client_id!r}, api_url={self.api_url!r}, kind={kind}, secret={MASK!r})"


def parse_service_key(text: str | bytes) -> ServiceKey:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ServiceKeyError("service key is not valid JSON") from None
    if not isinstance(data, dict):
        raise ServiceKeyError("service key must be a JSON object")
    client_id = _text(data, "clientid")
    api_url = _text(_object(data, "serviceurls"), "AI_API_URL", "serviceurls.AI_API_URL")
    _url(api_url, "serviceurls.AI_API_URL")
    zone = data.get("identityzone") if isinstance(data.get("identityzone"), str) else None
    if "certificate" in data or "key" in data:
        cert_url = data.get("certurl", data.get("certUrl"))
        if not isinstance(cert_url, str) or not cert_url:
            raise ServiceKeyError("service key field certurl is missing (X.509 keys need it)")
        _url(cert_url, "certurl")
        return ServiceKey(
            client_id=client_id,
            api_url=api_url.rstrip("/"),
            auth_url=cert_url.rstrip("/"),
            certificate=_text(data, "certificate"),
            private_key=_text(data, "key"),
            identity_zone=zone,
        )
    url = _text(data, "url")
    _url(url, "url")
    return ServiceKey(
        client_id=client_id,
        api_url=api_url.rstrip("/"),
        auth_url=url.rstrip("/"),
        client_secret=_text(data, "clientsecret"),
        identity_zone=zone,
    )


def _object(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ServiceKeyError(f"service key field {name} is missing or not an object")
    return value


def _text(data: dict[str, Any], name: str, label: str | None = None) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ServiceKeyError(f"service key field {label or name} is missing or empty")
    return value


def _url(value: str, label: str) -> None:
    if not value.startswith(("https://", "http://")):
        raise ServiceKeyError(f"service key field {label} is not an http(s) URL")


def cleartext_issues(key: ServiceKey, *, target: str, insecure_http: bool) -> list[ConfigIssue]:
    """Refuse http:// XSUAA or AI API URLs to a non-loopback host unless the target allows it; warn when it does.

    Errors name ``targets.<t>.service_key`` (the key's URL is what is wrong) or
    ``targets.<t>.insecure_http`` (set although both URLs are https); warnings name the endpoint.
    """
    flag = f"targets.{target}.insecure_http"
    where = f"targets.{target}.service_key"
    urls = (("certurl" if key.mtls else "url", key.auth_url), ("serviceurls.AI_API_URL", key.api_url))
    if insecure_http and not any(is_http(url) for _, url in urls):
        return [ConfigIssue(flag, "is true, but the service key's XSUAA and AI API URLs are https://; remove it")]
    issues = []
    for label, url in urls:
        rule = cleartext_rule(url, insecure_http=insecure_http and is_http(url), flag=flag)
        if rule.problem:
            issues.append(ConfigIssue(where, f"service key field {label}: {rule.problem}"))
        elif rule.warning:
            issues.append(ConfigIssue(where, f"service key field {label}: {rule.warning}", "warning"))
    return issues
