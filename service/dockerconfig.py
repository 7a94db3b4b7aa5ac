"""Render and fingerprint a ``.dockerconfigjson`` (pure functions).

``render`` builds ``{"auths": {host: {"username", "password", "auth"}}}`` with the same
bytes for the same input (sorted hosts, compact separators), so a fingerprint changes
only when the credential or the hosts change. Errors name the secret and the field,
never the value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable

from service.errors import CredentialError
from service.model import DockerConfigJson, Fingerprint, RegistryCredential

MAX_BYTES = 10_240  # the Launchpad's limit, which the rotator applies to the API as well
DOCKER_HUB = "https://index.docker.io"
_DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "hub.docker.com"}
)
_HOST_RE = re.compile(
    r"^(?:https?://)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._\-/]*)?$"
)


def normalise_host(host: str) -> str:
    """Docker Hub under its one key ``https://index.docker.io``; other hosts as given, lower-cased."""
    match = _HOST_RE.match(host.strip())
    if not match or (match["port"] and not 0 < int(match["port"]) < 65536):
        raise ValueError(f"not a registry host: {host!r}")
    bare = match["host"].lower()
    if bare in _DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return host.strip().lower().rstrip("/")


def registry_hosts(configured: Iterable[str], credential: RegistryCredential, *, secret: str) -> list[str]:
    """The hosts to render: configured ones plus the one the source names, normalised, unique, sorted."""
    hosts = list(configured)
    if credential.registry:
        hosts.append(credential.registry)
    if not hosts:
        raise CredentialError(
            f"secret {secret!r}: no registry host (set registries in the config or a registry_field in the source)",
            secret=secret,
            field="registries",
        )
    try:
        return sorted({normalise_host(host) for host in hosts})
    except ValueError as e:
        raise CredentialError(f"secret {secret!r}: {e}", secret=secret, field="registries") from None


def render(credential: RegistryCredential, hosts: Iterable[str], *, secret: str) -> DockerConfigJson:
    """The ``.dockerconfigjson`` string for ``hosts``; refuses empty fields and oversize results."""
    _require(credential.username, "username", credential, secret)
    _require(credential.password, "password", credential, secret)
    if ":" in credential.username:
        raise CredentialError(
            f"secret {secret!r}: the username from {credential.source.mount}/{credential.source.path} contains ':' "
            "which basic auth cannot carry",
            secret=secret,
            field="username",
        )
    auth = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
    entry = {"username": credential.username, "password": credential.password, "auth": auth}
    value = json.dumps({"auths": dict.fromkeys(sorted(hosts), entry)}, separators=(",", ":"), sort_keys=True)
    size = len(value.encode())
    if size > MAX_BYTES:
        raise CredentialError(
            f"secret {secret!r}: the rendered .dockerconfigjson has {size} bytes, more than AI Core's {MAX_BYTES}",
            secret=secret,
            field=".dockerconfigjson",
        )
    return DockerConfigJson(value)


def _require(value: str, field: str, credential: RegistryCredential, secret: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise CredentialError(
            f"secret {secret!r}: the {field} read from {credential.source.mount}/{credential.source.path} is empty",
            secret=secret,
            field=field,
        )


def fingerprint(config: DockerConfigJson, *, key: bytes, key_id: str) -> Fingerprint:
    """``HMAC-SHA256(key, rendered .dockerconfigjson)``: never a plain hash, never the value."""
    digest = hmac.new(key, config.reveal().encode(), hashlib.sha256).hexdigest()
    return Fingerprint(key_id=key_id, digest=digest)
