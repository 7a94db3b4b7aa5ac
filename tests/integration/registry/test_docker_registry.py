"""Verification against a real registry: CNCF distribution (Debian's docker-registry) with htpasswd."""

from __future__ import annotations

import pytest

from service.model import VerificationOutcome as V
from service.registry import RegistryVerifier
from service.sandbox.docker_registry import DockerRegistry
from tests.integration.registry.conftest import OTHER_PASSWORD, PASSWORD, credential, policy

pytestmark = pytest.mark.registry_server


def test_good_credential_is_ok(docker_registry: DockerRegistry, verifier: RegistryVerifier) -> None:
    """distribution accepts the htpasswd user's password: ok."""
    result = verifier.verify(credential(), registry=docker_registry.url, policy=policy())
    assert (result.outcome, result.status) == (V.OK, 200)


def test_wrong_password_is_auth_failed(docker_registry: DockerRegistry, verifier: RegistryVerifier) -> None:
    """distribution refuses a wrong password with 401: auth_failed."""
    result = verifier.verify(credential(password=PASSWORD + "x"), registry=docker_registry.url, policy=policy())
    assert (result.outcome, result.status) == (V.AUTH_FAILED, 401)


def test_unknown_user_is_auth_failed(docker_registry: DockerRegistry, verifier: RegistryVerifier) -> None:
    """A user missing from htpasswd is refused: auth_failed."""
    result = verifier.verify(credential(username="mallory"), registry=docker_registry.url, policy=policy())
    assert result.outcome == V.AUTH_FAILED


def test_canary_manifest_is_ok(docker_registry: DockerRegistry, verifier: RegistryVerifier) -> None:
    """HEAD of a pushed image's manifest (with the Accept types docker sends) is ok for any htpasswd user."""
    bob = credential(username="bob", password=OTHER_PASSWORD)
    result = verifier.verify(bob, registry=docker_registry.url, policy=policy(canary_repository="team/app:latest"))
    assert (result.outcome, result.status) == (V.OK, 200)


def test_missing_canary_is_unexpected(docker_registry: DockerRegistry, verifier: RegistryVerifier) -> None:
    """A canary repository that does not exist is a 404: unexpected, naming the setting."""
    result = verifier.verify(credential(), registry=docker_registry.url, policy=policy(canary_repository="team/none"))
    assert (result.outcome, result.status) == (V.UNEXPECTED, 404)
    assert "verify.canary_repository" in result.detail


def test_htpasswd_entries_are_bcrypt_hashes(docker_registry: DockerRegistry) -> None:
    """distribution reads only bcrypt; the file holds $2y$ hashes, never a password."""
    text = (docker_registry.base_dir / "htpasswd").read_text()
    assert [line.split(":", 1)[0] for line in text.splitlines()] == ["alice", "bob"]
    assert all(line.split(":", 1)[1].startswith("$2y$") for line in text.splitlines())
    assert PASSWORD not in text
