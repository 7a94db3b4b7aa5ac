"""Where to send each verification request (pure functions).

Registry forms: ``registry.example.com`` and ``host:5000`` mean HTTPS; ``https://host``
as given; ``http://host:5000`` only when written out (local test registries). The v2 API
lives at the root of the host, so a path (``ghcr.io/team``) is dropped. Docker Hub, under
any of its names, is reached at ``registry-1.docker.io``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from service.dockerconfig import DOCKER_HUB, normalise_host
from service.transport import is_loopback

DOCKER_HUB_API = "https://registry-1.docker.io"
_SPLIT_RE = re.compile(r"^(?:(?P<scheme>https?)://)?(?P<authority>[^/]+)")
# distribution's reference grammar: path components of lower-case alphanumerics and separators.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_\-][a-z0-9]+)*:[A-Za-z0-9=_\-]{32,}$")

# What a docker client accepts when it pulls: images and image indexes, Docker and OCI.
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def api_base(registry: str) -> str:
    """The v2 API's origin for a configured registry host, e.g. ``https://host:5000``."""
    if normalise_host(registry) == DOCKER_HUB:
        return DOCKER_HUB_API
    match = _SPLIT_RE.match(registry.strip())
    assert match is not None, "normalise_host accepted it"
    return f"{match['scheme'] or 'https'}://{match['authority'].lower()}"


def is_docker_hub(registry: str) -> bool:
    return normalise_host(registry) == DOCKER_HUB


@dataclass(frozen=True, slots=True)
class Canary:
    """A repository (and the tag or digest in it) whose manifest proves pull access."""

    repository: str
    reference: str = "latest"

    @property
    def scope(self) -> str:
        return f"repository:{self.repository}:pull"

    def __str__(self) -> str:
        separator = "@" if ":" in self.reference else ":"
        return f"{self.repository}{separator}{self.reference}"


def parse_canary(text: str, *, registry: str) -> Canary:
    """``team/app``, ``team/app:tag`` or ``team/app@sha256:...``; Docker Hub's ``alpine`` is ``library/alpine``."""
    name, _, digest = text.strip().partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else ""
    repository = name[:colon] if tag else name
    if not _REPOSITORY_RE.match(repository) or (tag and not _TAG_RE.match(tag)):
        raise ValueError(f"verify.canary_repository {text!r} is not a repository[:tag] name")
    if digest and not _DIGEST_RE.match(digest):
        raise ValueError(f"verify.canary_repository {text!r} has a malformed digest")
    if is_docker_hub(registry) and "/" not in repository:
        repository = f"library/{repository}"
    return Canary(repository, digest or tag or "latest")


def manifest_url(base: str, canary: Canary) -> str:
    return f"{base}/v2/{canary.repository}/manifests/{canary.reference}"


def token_url(realm: str, *, service: str | None, scope: str | None) -> httpx.URL:
    """The token request: the realm with ``service`` and ``scope`` added to its own query."""
    params = {name: value for name, value in (("service", service), ("scope", scope)) if value}
    return httpx.URL(realm).copy_merge_params(params)


def realm_allowed(realm: str, *, base: str) -> bool:
    """Credentials go to a realm over HTTPS, or over HTTP only when the registry itself was given as HTTP
    and the realm is that same host or loopback (an http registry must not lead them to another host)."""
    url = httpx.URL(realm)
    if url.scheme == "https":
        return True
    if url.scheme != "http" or not base.startswith("http://"):
        return False
    return url.host == httpx.URL(base).host or is_loopback(url.host)
