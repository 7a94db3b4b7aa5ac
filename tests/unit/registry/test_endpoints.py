"""Registry host forms, canary references and token requests (pure)."""

from __future__ import annotations

import pytest

from service.registry.endpoints import (
    Canary,
    api_base,
    manifest_url,
    parse_canary,
    realm_allowed,
    token_url,
)


@pytest.mark.parametrize(
    ("registry", "base"),
    [
        ("registry.example.com", "https://registry.example.com"),
        ("Registry.Example.com:5000", "https://registry.example.com:5000"),
        ("https://registry.example.com", "https://registry.example.com"),
        ("https://registry.example.com/", "https://registry.example.com"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("ghcr.io/team", "https://ghcr.io"),
        ("https://index.docker.io", "https://registry-1.docker.io"),
        ("https://index.docker.io/v1/", "https://registry-1.docker.io"),
        ("docker.io", "https://registry-1.docker.io"),
        ("registry-1.docker.io", "https://registry-1.docker.io"),
    ],
)
def test_api_base_of_each_host_form(registry: str, base: str) -> None:
    """Bare hosts mean HTTPS, http only when written, paths dropped, Docker Hub at registry-1."""
    assert api_base(registry) == base


@pytest.mark.parametrize("registry", ["", "ftp://host", "host:99999", "not a host"])
def test_api_base_refuses_what_is_not_a_host(registry: str) -> None:
    """Anything that is not a registry host raises ValueError (the verifier turns it into a result)."""
    with pytest.raises(ValueError, match="not a registry host"):
        api_base(registry)


@pytest.mark.parametrize(
    ("text", "registry", "canary"),
    [
        ("team/app", "registry.example.com", Canary("team/app", "latest")),
        ("team/app:v1.2", "registry.example.com", Canary("team/app", "v1.2")),
        ("a/b/c", "host:5000", Canary("a/b/c", "latest")),
        ("alpine", "https://index.docker.io", Canary("library/alpine", "latest")),
        ("alpine", "quay.io", Canary("alpine", "latest")),
        ("team/app@sha256:" + "a" * 64, "quay.io", Canary("team/app", "sha256:" + "a" * 64)),
    ],
)
def test_parse_canary(text: str, registry: str, canary: Canary) -> None:
    """repository[:tag|@digest]; the tag defaults to latest; official Docker Hub images live in library/."""
    assert parse_canary(text, registry=registry) == canary


@pytest.mark.parametrize("text", ["Team/App", "team/app:", "team//app", "team/app:bad tag", "team/app@md5:x"])
def test_parse_canary_refuses_malformed_names(text: str) -> None:
    """A name distribution would refuse is a configuration mistake, named as such."""
    with pytest.raises(ValueError, match=r"verify\.canary_repository"):
        parse_canary(text, registry="quay.io")


def test_canary_scope_url_and_text() -> None:
    """The canary asks for pull scope and HEADs the manifest by tag or digest."""
    tagged = Canary("team/app", "v1")
    pinned = Canary("team/app", "sha256:" + "b" * 64)
    assert tagged.scope == "repository:team/app:pull"
    assert manifest_url("https://h", tagged) == "https://h/v2/team/app/manifests/v1"
    assert str(tagged) == "team/app:v1"
    assert str(pinned) == "team/app@sha256:" + "b" * 64


def test_token_url_adds_service_and_scope() -> None:
    """service and scope are query parameters of the realm, URL-encoded."""
    url = token_url("https://auth.docker.io/token", service="registry.docker.io", scope="repository:a/b:pull")
    assert url.params["service"] == "registry.docker.io"
    assert url.params["scope"] == "repository:a/b:pull"
    assert url.host == "auth.docker.io"
    assert url.path == "/token"


def test_token_url_keeps_the_realm_query_and_omits_missing_values() -> None:
    """A realm with its own query keeps it; a missing service or scope is not sent empty."""
    url = token_url("https://gitlab.example/jwt/auth?client_id=docker", service=None, scope=None)
    assert dict(url.params) == {"client_id": "docker"}


@pytest.mark.parametrize(
    ("realm", "base", "allowed"),
    [
        ("https://auth.example/token", "https://registry.example", True),
        ("http://auth.example/token", "https://registry.example", False),
        ("http://127.0.0.1:5001/token", "http://127.0.0.1:5000", True),
        ("ftp://auth.example/token", "http://127.0.0.1:5000", False),
    ],
)
def test_realm_allowed_only_over_https_unless_registry_is_http(realm: str, base: str, allowed: bool) -> None:
    """The credential never goes to a plain-HTTP realm of an HTTPS registry."""
    assert realm_allowed(realm, base=base) is allowed
