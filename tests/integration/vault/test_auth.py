"""Logging in for real on OpenBao: token, AppRole, JWT (re-read at each login) and Kubernetes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.config import SecretRef, VaultAuthConfig
from service.errors import VaultAuthError
from service.vault import Location, VaultSession
from tests.integration.vault.conftest import ApproleFactory, SessionFactory, unique
from tests.integration.vault.kube import TokenReviewServer

WHOAMI = Location(kind="token", mount="auth/token", path="lookup-self")


def whoami(session: VaultSession) -> dict[str, Any]:
    """The session's token as Vault sees it (lookup-self)."""
    data: dict[str, Any] = session.request(lambda client: client.auth.token.lookup_self(), at=WHOAMI)["data"]
    return data


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"aud": "rotator", "iat": now, "nbf": now, "exp": now + 300, **claims}, key, algorithm="RS256")


# --- token ---------------------------------------------------------------------------


def child_token(root: hvac.Client, **options: Any) -> str:
    token: str = root.auth.token.create(policies=["default"], **options)["auth"]["client_token"]
    return token


def test_token_from_env_logs_in(
    root: hvac.Client, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Token auth reads the token from an environment variable and learns its TTL from lookup-self."""
    monkeypatch.setenv("ROTATOR_TEST_CHILD_TOKEN", child_token(root, ttl="1h"))
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_CHILD_TOKEN")))
    before = time.time()

    session.login()

    expires = session.token_expires_at()
    assert expires is not None
    assert before + 3590 < expires < time.time() + 3601
    assert whoami(session)["policies"] == ["default"]


def test_token_from_file_logs_in(root: hvac.Client, make_session: SessionFactory, tmp_path: Path) -> None:
    """Token auth reads the token from a file (e.g. one a Vault agent writes)."""
    token_file = tmp_path / "token"
    token_file.write_text(child_token(root, ttl="1h", meta={"who": "file"}) + "\n")
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(file=token_file)))

    session.login()

    assert whoami(session)["meta"] == {"who": "file"}


def test_invalid_token_is_refused(make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token Vault does not know is a VaultAuthError that says what to do, without the token."""
    monkeypatch.setenv("ROTATOR_TEST_BAD_TOKEN", "s.sentinel-not-a-real-token-000000")
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_BAD_TOKEN")))

    with pytest.raises(VaultAuthError, match=r"refused the token login .* give the service a valid token") as caught:
        session.login()
    assert "sentinel" not in str(caught.value)
    assert "sentinel" not in repr(caught.value)


def test_unset_token_variable_is_refused(make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset token variable is a VaultAuthError naming the variable."""
    monkeypatch.delenv("ROTATOR_TEST_UNSET", raising=False)
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_UNSET")))

    with pytest.raises(VaultAuthError, match="cannot read the Vault token from env ROTATOR_TEST_UNSET"):
        session.login()


# --- AppRole -------------------------------------------------------------------------


def test_approle_logs_in_with_secret_id_file(make_approle: ApproleFactory, make_session: SessionFactory) -> None:
    """AppRole logs in with the role id and the secret id read from a file."""
    auth = make_approle(token_ttl="10m")
    session = make_session(auth)

    session.login()

    identity = whoami(session)
    assert identity["path"] == f"auth/{auth.mount}/login"
    assert identity["meta"] == {"role_name": "rotator"}
    assert 590 <= identity["ttl"] <= 600


def test_approle_wrong_secret_id_is_refused(make_approle: ApproleFactory, make_session: SessionFactory) -> None:
    """A wrong secret id is a VaultAuthError naming the mount, with a hint, and no secret id."""
    auth = make_approle()
    assert auth.secret_id is not None
    assert auth.secret_id.file is not None
    auth.secret_id.file.write_text("00000000-0000-0000-0000-000000000000")
    session = make_session(auth)

    with pytest.raises(VaultAuthError, match=f"approle login at auth/{auth.mount} .*HTTP 400.* secret id") as caught:
        session.login()
    assert "00000000-0000" not in str(caught.value)


def test_missing_secret_id_file_is_refused(make_approle: ApproleFactory, make_session: SessionFactory) -> None:
    """A missing secret id file is a VaultAuthError naming the file."""
    auth = make_approle()
    assert auth.secret_id is not None
    assert auth.secret_id.file is not None
    auth.secret_id.file.unlink()

    with pytest.raises(VaultAuthError, match=f"cannot read the AppRole secret id from file {auth.secret_id.file}"):
        make_session(auth).login()


def test_login_on_missing_auth_mount_is_refused(make_approle: ApproleFactory, make_session: SessionFactory) -> None:
    """An auth mount that does not exist is a VaultAuthError naming it."""
    auth = make_approle().model_copy(update={"mount": "no-such-approle"})

    with pytest.raises(VaultAuthError, match="auth/no-such-approle"):
        make_session(auth).login()


# --- JWT -----------------------------------------------------------------------------


@pytest.fixture
def jwt_mount(root: hvac.Client, signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """JWT auth validating with our public key; role "rotator" maps the subject into token metadata."""
    mount = unique("jwt")
    root.sys.enable_auth_method("jwt", path=mount)
    root.auth.jwt.configure(jwt_validation_pubkeys=[public_pem(signing_key)], path=mount)
    root.auth.jwt.create_role(
        "rotator",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["rotator"],
        claim_mappings={"sub": "subject"},
        token_ttl="10m",
        token_policies=["default"],
        allowed_redirect_uris=[],
        path=mount,
    )
    yield mount
    root.sys.disable_auth_method(mount)


def test_jwt_is_read_again_at_each_login(
    jwt_mount: str, signing_key: rsa.RSAPrivateKey, make_session: SessionFactory, tmp_path: Path
) -> None:
    """The JWT file is re-read at every login: a rotated token is used for the next login."""
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(sign(signing_key, sub="first-pod"))
    session = make_session(VaultAuthConfig(method="jwt", mount=jwt_mount, role="rotator", jwt=SecretRef(file=jwt_file)))
    session.login()
    first = whoami(session)

    jwt_file.write_text(sign(signing_key, sub="second-pod"))
    session.login()
    second = whoami(session)

    assert first["meta"]["subject"] == "first-pod"
    assert second["meta"]["subject"] == "second-pod"
    assert first["accessor"] != second["accessor"]


def test_jwt_signed_by_another_key_is_refused(jwt_mount: str, make_session: SessionFactory, tmp_path: Path) -> None:
    """A JWT that our key did not sign is a VaultAuthError with a JWT hint, without the JWT."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = sign(stranger, sub="intruder")
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(token)
    session = make_session(VaultAuthConfig(method="jwt", mount=jwt_mount, role="rotator", jwt=SecretRef(file=jwt_file)))

    with pytest.raises(VaultAuthError, match=r"jwt login .* signing key") as caught:
        session.login()
    assert token not in str(caught.value)


def test_expired_jwt_is_refused(
    jwt_mount: str, signing_key: rsa.RSAPrivateKey, make_session: SessionFactory, tmp_path: Path
) -> None:
    """An expired JWT is refused at login."""
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(sign(signing_key, sub="late", iat=1, nbf=1, exp=2))
    session = make_session(VaultAuthConfig(method="jwt", mount=jwt_mount, role="rotator", jwt=SecretRef(file=jwt_file)))

    with pytest.raises(VaultAuthError):
        session.login()


# --- Kubernetes ----------------------------------------------------------------------


@pytest.fixture
def kube() -> Iterator[TokenReviewServer]:
    with TokenReviewServer() as server:
        yield server


@pytest.fixture
def kubernetes_mount(root: hvac.Client, kube: TokenReviewServer) -> Iterator[str]:
    """Kubernetes auth asking our TokenReview stand-in; role "rotator" binds service account ns1/rotator."""
    mount = unique("kubernetes")
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.auth.kubernetes.configure(
        kubernetes_host=kube.url, kubernetes_ca_cert=kube.ca_pem, disable_local_ca_jwt=True, mount_point=mount
    )
    root.auth.kubernetes.create_role(
        "rotator",
        bound_service_account_names=["rotator"],
        bound_service_account_namespaces=["ns1"],
        ttl="10m",
        policies=["default"],
        mount_point=mount,
    )
    yield mount
    root.sys.disable_auth_method(mount)


def service_account_jwt(key: rsa.RSAPrivateKey, *, namespace: str, name: str, uid: str) -> str:
    return sign(
        key,
        iss="kubernetes/serviceaccount",
        aud=["https://kubernetes.default.svc"],  # the kubernetes auth plugin only decodes a list here
        sub=f"system:serviceaccount:{namespace}:{name}",
        **{
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": uid,
        },
    )


def test_kubernetes_login_through_token_review(
    kubernetes_mount: str,
    kube: TokenReviewServer,
    signing_key: rsa.RSAPrivateKey,
    make_session: SessionFactory,
    tmp_path: Path,
) -> None:
    """Kubernetes auth logs in with the service account token file once the TokenReview approves it."""
    token = service_account_jwt(signing_key, namespace="ns1", name="rotator", uid="uid-1")
    kube.approve(token, namespace="ns1", name="rotator", uid="uid-1")
    token_file = tmp_path / "sa-token"
    token_file.write_text(token)
    auth = VaultAuthConfig(method="kubernetes", mount=kubernetes_mount, role="rotator", jwt=SecretRef(file=token_file))
    session = make_session(auth)

    session.login()

    identity = whoami(session)
    assert identity["meta"]["service_account_name"] == "rotator"
    assert identity["meta"]["service_account_namespace"] == "ns1"
    assert kube.reviews == 1


def test_kubernetes_token_denied_by_review_is_refused(
    kubernetes_mount: str,
    kube: TokenReviewServer,
    signing_key: rsa.RSAPrivateKey,
    make_session: SessionFactory,
    tmp_path: Path,
) -> None:
    """A service account token the TokenReview does not approve is a VaultAuthError."""
    token_file = tmp_path / "sa-token"
    token_file.write_text(service_account_jwt(signing_key, namespace="ns1", name="rotator", uid="uid-1"))
    auth = VaultAuthConfig(method="kubernetes", mount=kubernetes_mount, role="rotator", jwt=SecretRef(file=token_file))

    with pytest.raises(VaultAuthError, match=r"kubernetes login .* service account"):
        make_session(auth).login()
    assert kube.reviews == 1
