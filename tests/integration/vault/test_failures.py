"""Vault failures become typed errors that say what to do: unreachable, slow, TLS, sealed, denied.

Also: namespaces and a custom CA work end to end through ``connect``, and no hvac or
urllib3 exception ever leaves the adapter.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import hvac
import pytest
import trustme
import urllib3.exceptions

from service.config import SecretRef, SourceConfig, VaultAuthConfig, VaultConfig
from service.errors import (
    ConfigError,
    DependencyUnavailable,
    SourceError,
    SourceNotFound,
    VaultPermissionDenied,
    VaultSealed,
    VaultUnavailable,
)
from service.sandbox.openbao import OpenBaoDevServer
from service.sandbox.processes import free_port
from service.vault import VaultSource, connect
from tests.harness import VaultServer
from tests.integration.vault.conftest import FIXED_NOW, ApproleFactory, SessionFactory, read_local, unique
from tests.integration.vault.servers import OpenBaoTlsDevServer

SENTINEL_TOKEN = "s.SENTINELtokenVALUE0123456789abcd"


def assert_translated(error: BaseException) -> None:
    """A service error, with no library exception attached to it and no token in its text."""
    assert isinstance(error, SourceError)
    assert not isinstance(error, hvac.exceptions.VaultError | urllib3.exceptions.HTTPError)
    assert error.__cause__ is None
    assert error.__context__ is None  # not even a suppressed context keeps the library exception alive
    assert SENTINEL_TOKEN not in str(error)
    assert SENTINEL_TOKEN not in repr(error)


@pytest.fixture
def sentinel_auth(monkeypatch: pytest.MonkeyPatch) -> VaultAuthConfig:
    monkeypatch.setenv("ROTATOR_TEST_SENTINEL_TOKEN", SENTINEL_TOKEN)
    return VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_SENTINEL_TOKEN"))


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_unreachable_vault(make_session: SessionFactory, sentinel_auth: VaultAuthConfig) -> None:
    """A closed port is VaultUnavailable naming the address (retryable, a dependency failure)."""
    address = f"http://127.0.0.1:{free_port()}"
    session = make_session(sentinel_auth, address=address)

    with pytest.raises(VaultUnavailable, match=f"cannot connect to Vault at {address}; check vault.address") as caught:
        session.login()

    assert isinstance(caught.value, DependencyUnavailable)
    assert_translated(caught.value)


def test_read_on_unreachable_vault(make_session: SessionFactory, sentinel_auth: VaultAuthConfig) -> None:
    """A read while Vault is unreachable is VaultUnavailable, not a urllib3 exception."""
    session = make_session(sentinel_auth, address=f"http://127.0.0.1:{free_port()}")
    source = VaultSource(session=session, clock=lambda: FIXED_NOW)

    with pytest.raises(VaultUnavailable) as caught:
        source.read(SourceConfig(path="acme"))

    assert_translated(caught.value)


def test_vault_that_does_not_answer_times_out(
    make_session: SessionFactory, sentinel_auth: VaultAuthConfig, silent_listener: str
) -> None:
    """A server that accepts but never answers is VaultUnavailable after the timeout."""
    session = make_session(sentinel_auth, address=silent_listener, timeout=0.3)

    with pytest.raises(VaultUnavailable, match="did not answer in time") as caught:
        session.check()

    assert_translated(caught.value)


@pytest.fixture
def sealed_vault() -> Iterator[tuple[OpenBaoDevServer, hvac.Client]]:
    """A dedicated dev server (the shared one must stay unsealed) and its root client."""
    with OpenBaoDevServer() as server:
        client = hvac.Client(url=server.address, token=server.root_token)
        yield server, client
        client.adapter.close()


def test_sealed_vault(sealed_vault: tuple[OpenBaoDevServer, hvac.Client], make_session: SessionFactory) -> None:
    """Reads, checks and logins on a sealed Vault are VaultSealed (503) saying to unseal it."""
    server, root = sealed_vault
    root.sys.enable_secrets_engine("kv", path="secret2", options={"version": "2"})
    token_file = Path(server.base_dir) / "token"
    token_file.write_text(server.root_token)
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(file=token_file)), address=server.address)
    session.login()
    source = VaultSource(session=session, clock=lambda: FIXED_NOW)
    root.sys.seal()

    with pytest.raises(VaultSealed, match="is sealed or a standby that cannot serve \\(503\\); unseal it") as read:
        source.read(SourceConfig(mount="secret2", path="acme"))
    with pytest.raises(VaultSealed) as check:
        session.check()
    with pytest.raises(VaultSealed) as login:
        session.login()

    for caught in (read, check, login):
        assert isinstance(caught.value, DependencyUnavailable)
        assert_translated(caught.value)


def test_revoke_never_raises(sealed_vault: tuple[OpenBaoDevServer, hvac.Client], make_session: SessionFactory) -> None:
    """revoke() at shutdown logs and returns when Vault cannot answer (here: sealed)."""
    server, sealed_root = sealed_vault
    sealed_root.sys.enable_auth_method("approle", path="approle")
    sealed_root.auth.approle.create_or_update_approle("r", token_policies=["default"])
    role_id = sealed_root.auth.approle.read_role_id("r")["data"]["role_id"]
    secret_file = Path(server.base_dir) / "secret-id"
    secret_file.write_text(sealed_root.auth.approle.generate_secret_id("r")["data"]["secret_id"])
    auth = VaultAuthConfig(method="approle", role_id=role_id, secret_id=SecretRef(file=secret_file))
    session = make_session(auth, address=server.address)
    session.login()
    sealed_root.sys.seal()

    session.revoke()

    assert session.token_expires_at() is None


def test_permission_denied_names_the_policy_path(
    root: hvac.Client,
    kv2_mount: str,
    make_policy: Callable[[dict[str, list[str]]], str],
    make_approle: ApproleFactory,
    make_session: SessionFactory,
) -> None:
    """A 403 on a valid token is VaultPermissionDenied naming <mount>/data/<path> and the capability."""
    root.secrets.kv.v2.create_or_update_secret("acme", secret={"username": "u", "password": "p"}, mount_point=kv2_mount)
    policy = make_policy({f"{kv2_mount}/data/other": ["read"]})
    session = make_session(make_approle(policies=[policy]))
    session.login()
    source = VaultSource(session=session, clock=lambda: FIXED_NOW)

    with pytest.raises(VaultPermissionDenied) as caught:
        source.read(SourceConfig(mount=kv2_mount, path="acme"))

    assert caught.value.policy_path == f"{kv2_mount}/data/acme"
    assert f'capability "read" on path "{kv2_mount}/data/acme"' in str(caught.value)
    assert "data/" in str(caught.value)
    assert_translated(caught.value)


def test_permission_denied_on_kv1_names_the_plain_path(
    root: hvac.Client,
    kv1_mount: str,
    make_policy: Callable[[dict[str, list[str]]], str],
    make_approle: ApproleFactory,
    make_session: SessionFactory,
) -> None:
    """For KV v1 the policy path is <mount>/<path> (no data/)."""
    policy = make_policy({f"{kv1_mount}/other": ["read"]})
    session = make_session(make_approle(policies=[policy]))
    session.login()

    with pytest.raises(VaultPermissionDenied) as caught:
        VaultSource(session=session, clock=lambda: FIXED_NOW).read(SourceConfig(kind="kv1", mount=kv1_mount, path="a"))

    assert caught.value.policy_path == f"{kv1_mount}/a"


@pytest.fixture
def namespace_with_secret(vault_server: VaultServer, root: hvac.Client) -> Iterator[str]:
    """A namespace of its own holding KV v2 mount "registry" with secret "acme"."""
    namespace = unique("team")
    root.sys.create_namespace(namespace)
    inside = hvac.Client(url=vault_server.address, token=vault_server.token, namespace=namespace)
    inside.sys.enable_secrets_engine("kv", path="registry", options={"version": "2"})
    inside.secrets.kv.v2.create_or_update_secret(
        "acme", secret={"username": "ns-user", "password": "p"}, mount_point="registry"
    )
    yield namespace
    inside.sys.disable_secrets_engine("registry")
    inside.adapter.close()
    root.sys.delete_namespace(namespace)


def test_namespace_is_used_for_login_and_reads(
    vault_server: VaultServer, namespace_with_secret: str, root_auth: VaultAuthConfig
) -> None:
    """With vault.namespace set, connect() logs in and reads inside that namespace; outside it is not found."""
    inside = connect(
        VaultConfig(address=vault_server.address, namespace=namespace_with_secret, auth=root_auth),
        read_local=read_local,
    )
    outside = connect(VaultConfig(address=vault_server.address, auth=root_auth), read_local=read_local)
    acme = SourceConfig(mount="registry", path="acme")
    try:
        credential = VaultSource(session=inside, clock=lambda: FIXED_NOW).read(acme)
        with pytest.raises(SourceNotFound):
            VaultSource(session=outside, clock=lambda: FIXED_NOW).read(acme)
    finally:
        inside.close()
        outside.close()

    assert credential.username == "ns-user"


@pytest.fixture(scope="module")
def tls_vault() -> Iterator[OpenBaoTlsDevServer]:
    with OpenBaoTlsDevServer() as server:
        yield server


def test_custom_ca_bundle_verifies_vault(tls_vault: OpenBaoTlsDevServer, tmp_path: Path) -> None:
    """connect() with vault.ca_cert set to OpenBao's own CA logs in and reads over verified TLS."""
    root = hvac.Client(url=tls_vault.address, token=tls_vault.root_token, verify=str(tls_vault.ca_cert))
    root.secrets.kv.v2.create_or_update_secret("tls", secret={"username": "u", "password": "over-tls"})
    root.adapter.close()
    token_file = tmp_path / "token"
    token_file.write_text(tls_vault.root_token)
    config = VaultConfig(
        address=tls_vault.address,
        ca_cert=tls_vault.ca_cert,
        auth=VaultAuthConfig(method="token", token=SecretRef(file=token_file)),
    )

    session = connect(config, read_local=read_local)
    try:
        credential = VaultSource(session=session, clock=lambda: FIXED_NOW).read(SourceConfig(path="tls"))
    finally:
        session.close()

    assert credential.password == "over-tls"
    assert session.address.startswith("https://")


def test_wrong_ca_bundle_is_a_clear_tls_error(
    tls_vault: OpenBaoTlsDevServer, tmp_path: Path, sentinel_auth: VaultAuthConfig
) -> None:
    """A CA bundle that did not sign Vault's certificate is VaultUnavailable: TLS verification failed."""
    wrong_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong_ca))
    config = VaultConfig(address=tls_vault.address, ca_cert=wrong_ca, auth=sentinel_auth)

    with pytest.raises(VaultUnavailable, match=r"TLS verification failed for Vault at https://127\.0\.0\.1") as caught:
        connect(config, read_local=read_local)

    assert "vault.ca_cert" in str(caught.value)
    assert_translated(caught.value)


def test_missing_ca_bundle_is_a_config_error(tmp_path: Path, sentinel_auth: VaultAuthConfig) -> None:
    """A CA bundle path that does not exist is a ConfigError naming vault.ca_cert."""
    config = VaultConfig(address="https://127.0.0.1:8200", ca_cert=tmp_path / "nope.pem", auth=sentinel_auth)

    with pytest.raises(ConfigError, match=r"vault.ca_cert: CA bundle .*nope.pem does not exist"):
        connect(config, read_local=read_local)


def test_connect_timeout_comes_from_config(silent_listener: str, sentinel_auth: VaultAuthConfig) -> None:
    """connect() applies vault.timeout: a silent server fails fast instead of hanging."""
    config = VaultConfig(address=silent_listener, timeout=timedelta(milliseconds=300), auth=sentinel_auth)

    with pytest.raises(VaultUnavailable, match="did not answer in time"):
        connect(config, read_local=read_local)


@pytest.mark.parametrize(
    ("kind", "mount", "path", "expected"),
    [
        ("kv2", "no-mount", "x", SourceNotFound),
        ("kv1", "no-mount", "x", SourceNotFound),
        ("dynamic", "no-mount", "creds/x", SourceNotFound),
        ("dynamic", "sys", "no-such-endpoint", SourceError),
    ],
)
def test_no_library_exception_escapes_a_read(
    source: VaultSource, kind: str, mount: str, path: str, expected: type[SourceError]
) -> None:
    """Every failing read raises a service error with no hvac or urllib3 exception attached."""
    with pytest.raises(expected) as caught:
        source.read(SourceConfig(kind=kind, mount=mount, path=path))

    assert_translated(caught.value)


def test_unmapped_status_is_a_source_error(source: VaultSource) -> None:
    """A status hvac does not map (405 for GET on a write-only endpoint) is a plain SourceError, not retryable."""
    with pytest.raises(SourceError, match="Vault refused the request for dynamic sys/seal") as caught:
        source.read(SourceConfig(kind="dynamic", mount="sys", path="seal"))

    assert type(caught.value) is SourceError
    assert not isinstance(caught.value, DependencyUnavailable)
    assert_translated(caught.value)
