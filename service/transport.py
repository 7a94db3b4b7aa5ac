"""Which endpoints may be reached over cleartext, and what start-up warns about (pure; stdlib only).

A credential travels to every endpoint the rotator talks to: the Vault token to Vault, the
XSUAA client secret to XSUAA, the bearer token to AI Core's API, the registry password to
a registry that is verified. ``http://`` is therefore refused for any host but loopback
(127.0.0.0/8, ::1, ``localhost``) unless that endpoint's own configuration says
``insecure_http = true``; every start then warns, naming the endpoint. ``insecure_http``
on an endpoint that is not ``http://`` is a mistake and refused too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
SECURE_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})


def host_of(url: str) -> str:
    """The host of an URL, or of a bare ``host[:port][/path]`` (brackets of IPv6 removed)."""
    text = url if "://" in url else f"//{url}"
    return (urlsplit(text).hostname or "").lower()


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and the names ``localhost`` stands for; no name is resolved."""
    name = host.strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_http(url: str) -> bool:
    return url.strip().lower().startswith("http://")


@dataclass(frozen=True, slots=True)
class CleartextRule:
    """The verdict on one endpoint: ``problem`` refuses it, ``warning`` lets it through loudly."""

    problem: str | None = None
    warning: str | None = None


def cleartext_rule(url: str, *, insecure_http: bool, flag: str) -> CleartextRule:
    """Refuse ``http://`` to a non-loopback host unless ``insecure_http``; refuse the flag on a non-http URL.

    ``flag`` is the key path of the endpoint's ``insecure_http`` setting, named in the message.
    """
    if not is_http(url):
        if insecure_http:
            return CleartextRule(problem=f"{flag} = true, but {_safe(url)} is not an http:// endpoint; remove it")
        return CleartextRule()
    host = host_of(url)
    if is_loopback(host):
        return CleartextRule()
    if insecure_http:
        return CleartextRule(warning=f"cleartext http:// to {host} is allowed by {flag}; credentials cross unencrypted")
    return CleartextRule(
        problem=f"http:// to non-loopback host {host} would send credentials in cleartext; "
        f"use https:// or set {flag} = true"
    )


def database_tls_warning(url: str) -> str | None:
    """A warning for a PostgreSQL URL to a non-loopback host that does not require TLS."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    hosts = query.get("host", []) or [parts.hostname or ""]
    if all(host.startswith("/") or is_loopback(host) for host in hosts if host):  # unix sockets and loopback
        return None
    modes = query.get("sslmode", [])
    if modes and modes[-1] in SECURE_SSLMODES:
        return None
    shown = ", ".join(h for h in hosts if h) or "(libpq default host)"
    return (
        f"the database at {shown} is reached without sslmode=require, verify-ca or verify-full: "
        "the password and the audit trail may cross unencrypted"
    )


def _safe(url: str) -> str:
    """Scheme, host and port only: an URL in a message must not carry userinfo or a query."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{host}{port}"
