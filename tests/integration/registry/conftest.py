"""Fixtures for registry verification: the token-auth emulator (HTTP, HTTPS, Basic) and distribution."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trustme

from service import logs
from service.config import VerifyConfig
from service.model import RegistryCredential, SourceInfo
from service.registry import RegistryVerifier
from service.sandbox.docker_registry import DockerRegistry, RegistryUnavailable
from service.sandbox.registry_emulator import RegistryEmulator

# Sentinels: tests search every detail, log line and recorded request for these.
PASSWORD = "Sentinel-Registry-Pa55-7f3a9c"
OTHER_PASSWORD = "Sentinel-Other-Pa55-2b8d41"
ALICE_REPOSITORIES = ("team/app",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "registry_server: runs CNCF distribution (apt-get install docker-registry apache2-utils)",
    )


def credential(username: str = "alice", password: str = PASSWORD) -> RegistryCredential:
    return RegistryCredential(username, password, SourceInfo("registry", "team/app"), datetime(2026, 1, 1, tzinfo=UTC))


def policy(**values: Any) -> VerifyConfig:
    """A registry verification policy with a short timeout; ``values`` override fields."""
    return VerifyConfig.model_validate({"mode": "registry", "timeout": timedelta(seconds=3), **values})


def _with_users(emulator: RegistryEmulator) -> RegistryEmulator:
    emulator.add_user("alice", PASSWORD, repositories=ALICE_REPOSITORIES)
    emulator.add_user("bob", OTHER_PASSWORD, repositories=())
    return emulator


@pytest.fixture
def emulator() -> Iterator[RegistryEmulator]:
    """A Bearer-token registry on HTTP: alice may pull team/app, bob may pull nothing."""
    with RegistryEmulator() as server:
        yield _with_users(server)


@pytest.fixture
def basic_emulator() -> Iterator[RegistryEmulator]:
    """The same users behind Basic auth."""
    with RegistryEmulator(auth="basic") as server:
        yield _with_users(server)


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_cert(tls_ca: trustme.CA, tmp_path: Path) -> Path:
    """The test CA's certificate as a PEM file, as ``verify.ca_cert`` names it."""
    path = tmp_path / "registry-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def tls_emulator(tls_ca: trustme.CA) -> Iterator[RegistryEmulator]:
    """The Bearer-token registry over HTTPS with a certificate from the test CA."""
    with RegistryEmulator(tls=server_context(tls_ca)) as server:
        yield _with_users(server)


@pytest.fixture
def verifier() -> Iterator[RegistryVerifier]:
    with RegistryVerifier() as instance:
        yield instance


@pytest.fixture(scope="module")
def docker_registry() -> Iterator[DockerRegistry]:
    """CNCF distribution with htpasswd users alice and bob, and an image team/app:latest."""
    server = DockerRegistry(users={"alice": PASSWORD, "bob": OTHER_PASSWORD})
    try:
        server.start()
    except RegistryUnavailable as e:
        server.stop()
        pytest.fail(f"registry_server test needs CNCF distribution: {e}", pytrace=False)
    try:
        push_image(server.url, "team/app", "latest", auth=("alice", PASSWORD))
        yield server
    finally:
        server.stop()


def push_image(url: str, repository: str, tag: str, *, auth: tuple[str, str]) -> None:
    """Upload a config blob and an image manifest with no layers, as ``docker push`` would."""
    blob = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(blob), "digest": digest},
        "layers": [],
    }
    with httpx.Client(base_url=url, auth=auth) as client:
        started = client.post(f"/v2/{repository}/blobs/uploads/").raise_for_status()
        upload = httpx.URL(url).join(started.headers["location"]).copy_merge_params({"digest": digest})
        client.put(upload, content=blob, headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        headers = {"Content-Type": manifest["mediaType"]}
        client.put(f"/v2/{repository}/manifests/{tag}", json=manifest, headers=headers).raise_for_status()


@pytest.fixture
def captured_logs() -> Iterator[Callable[[], str]]:
    """Route the service's logs (JSON, debug level) to a buffer; yields a reader of what was written."""
    buffer = io.StringIO()
    logs.configure(level="debug", fmt="json", stream=buffer)
    yield buffer.getvalue
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()
