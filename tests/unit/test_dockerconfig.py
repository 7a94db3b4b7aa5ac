"""Rendering and fingerprinting a .dockerconfigjson."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.dockerconfig import MAX_BYTES, fingerprint, normalise_host, registry_hosts, render
from service.errors import CredentialError
from service.model import RegistryCredential, SourceInfo

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SOURCE = SourceInfo(mount="secret", path="registries/acme", version=3)


def credential(
    username: str = "robot", password: str = "sentinel-pass", registry: str | None = None
) -> RegistryCredential:
    return RegistryCredential(username=username, password=password, source=SOURCE, read_at=NOW, registry=registry)


def test_render_has_auths_per_host() -> None:
    """Each host gets username, password and the base64 auth field docker login writes."""
    config = render(credential(), ["b.example", "a.example"], secret="acme-registry")
    data = json.loads(config.reveal())
    assert list(data["auths"]) == ["a.example", "b.example"]
    entry = data["auths"]["a.example"]
    assert entry == {
        "username": "robot",
        "password": "sentinel-pass",
        "auth": base64.b64encode(b"robot:sentinel-pass").decode(),
    }


@pytest.mark.parametrize(
    "alias", ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"]
)
def test_docker_hub_is_normalised(alias: str) -> None:
    """Every spelling of Docker Hub becomes https://index.docker.io."""
    assert normalise_host(alias) == "https://index.docker.io"


def test_hosts_merge_config_and_source() -> None:
    """The source's own registry host joins the configured ones, deduplicated and sorted."""
    hosts = registry_hosts(
        ["Registry.Example:5000", "docker.io"], credential(registry="registry.example:5000"), secret="acme-registry"
    )
    assert hosts == ["https://index.docker.io", "registry.example:5000"]


def test_no_host_is_an_error() -> None:
    """A secret needs at least one registry host."""
    with pytest.raises(CredentialError, match="no registry host") as caught:
        registry_hosts([], credential(), secret="acme-registry")
    assert caught.value.field == "registries"


def test_invalid_host_is_named() -> None:
    """A malformed host is refused with the secret's name."""
    with pytest.raises(CredentialError, match="secret 'acme-registry': not a registry host: 'bad host'"):
        registry_hosts(["bad host"], credential(), secret="acme-registry")


@pytest.mark.parametrize(("field", "kwargs"), [("username", {"username": ""}), ("password", {"password": "  "})])
def test_empty_fields_are_refused(field: str, kwargs: dict[str, str]) -> None:
    """An empty username or password names the field and the source, never a value."""
    with pytest.raises(CredentialError) as caught:
        render(credential(**kwargs), ["a.example"], secret="acme-registry")
    assert caught.value.field == field
    assert f"the {field} read from secret/registries/acme is empty" in str(caught.value)
    assert "sentinel-pass" not in str(caught.value)


def test_oversize_is_refused() -> None:
    """A rendering over 10,240 bytes is refused before any call to AI Core."""
    with pytest.raises(CredentialError, match=f"more than AI Core's {MAX_BYTES}") as caught:
        render(credential(password="p" * 6000), ["a.example"], secret="acme-registry")
    assert "p" * 20 not in str(caught.value)


def test_rendered_value_is_masked_in_repr() -> None:
    """repr and str of the rendered value never show it."""
    config = render(credential(), ["a.example"], secret="acme-registry")
    assert "sentinel-pass" not in repr(config)
    assert "sentinel-pass" not in str(config)
    assert "sentinel-pass" not in repr(credential())


def test_fingerprint_is_keyed_and_labelled() -> None:
    """The fingerprint is an HMAC: it changes with the key, and carries the key id."""
    config = render(credential(), ["a.example"], secret="acme-registry")
    one = fingerprint(config, key=b"key-one", key_id="k1")
    two = fingerprint(config, key=b"key-two", key_id="k2")
    assert str(one).startswith("hmac-sha256:k1:")
    assert one.digest != two.digest
    assert len(one.digest) == 64


@given(
    st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and ":" not in s),
    st.text(min_size=1, max_size=80).filter(str.strip),
)
def test_render_is_deterministic(username: str, password: str) -> None:
    """The same credential always renders to the same bytes (so fingerprints compare)."""
    cred = credential(username=username, password=password)
    first = render(cred, ["b.example", "a.example"], secret="acme-registry")
    again = render(cred, ["a.example", "b.example"], secret="acme-registry")
    assert first.reveal() == again.reveal()
    assert json.loads(first.reveal())["auths"]["a.example"]["password"] == password
