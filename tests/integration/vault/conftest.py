"""Fixtures for the Vault source: unique mounts on the session's real OpenBao server, sessions, logins.

Every test enables its own mounts and auth methods under unique names and disables them
afterwards, so tests share one server without seeing each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest

from service.config import SecretRef, VaultAuthConfig, VaultConfig
from service.vault import VaultSession, VaultSource
from service.vault.session import vault_client
from tests.fakes import ManualMonotonic as FakeClock  # noqa: F401 (imported by the tests here)
from tests.harness import VaultServer

FIXED_NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
ROOT_TOKEN_ENV = "ROTATOR_VAULT_TEST_ROOT"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def read_local(ref: SecretRef) -> str:
    """What the lead's resolver does for local references: a file's text or a variable."""
    if ref.file is not None:
        return ref.file.read_text().strip()
    if ref.env is not None:
        return os.environ[ref.env]
    raise AssertionError("only local references here")


@pytest.fixture
def root(vault_server: VaultServer) -> Iterator[hvac.Client]:
    """An hvac client with the server's root token, for arranging a test."""
    client = hvac.Client(url=vault_server.address, token=vault_server.token)
    yield client
    client.adapter.close()


@pytest.fixture
def kv2_mount(root: hvac.Client) -> Iterator[str]:
    mount = unique("kv2")
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield mount
    root.sys.disable_secrets_engine(mount)


@pytest.fixture
def kv1_mount(root: hvac.Client) -> Iterator[str]:
    mount = unique("kv1")
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    yield mount
    root.sys.disable_secrets_engine(mount)


SessionFactory = Callable[..., VaultSession]


@pytest.fixture
def make_session(vault_server: VaultServer) -> Iterator[SessionFactory]:
    """Build VaultSessions on the shared server (not logged in); they are closed after the test."""
    sessions: list[VaultSession] = []

    def make(auth: VaultAuthConfig, *, address: str | None = None, **options: object) -> VaultSession:
        timeout = options.pop("timeout", None)
        config = VaultConfig(
            address=address or vault_server.address,
            auth=auth,
            namespace=options.pop("namespace", None),
            **({"timeout": timedelta(seconds=timeout)} if isinstance(timeout, float | int) else {}),
        )
        session = VaultSession(client=vault_client(config), auth=auth, read_local=read_local, **options)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def root_auth(vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch) -> VaultAuthConfig:
    """Token auth with the root token, supplied through an environment variable."""
    monkeypatch.setenv(ROOT_TOKEN_ENV, vault_server.token)
    return VaultAuthConfig(method="token", token=SecretRef(env=ROOT_TOKEN_ENV))


@pytest.fixture
def root_session(make_session: SessionFactory, root_auth: VaultAuthConfig) -> VaultSession:
    session = make_session(root_auth)
    session.login()
    return session


@pytest.fixture
def source(root_session: VaultSession) -> VaultSource:
    """A VaultSource reading with the root token, at a fixed time."""
    return VaultSource(session=root_session, clock=lambda: FIXED_NOW)


@pytest.fixture
def make_policy(root: hvac.Client) -> Iterator[Callable[[dict[str, list[str]]], str]]:
    """Create a policy granting capabilities on paths; deleted after the test."""
    names: list[str] = []

    def make(paths: dict[str, list[str]]) -> str:
        name = unique("policy")
        rules = "\n".join(
            f'path "{path}" {{ capabilities = {caps!r} }}'.replace("'", '"') for path, caps in paths.items()
        )
        root.sys.create_or_update_policy(name=name, policy=rules)
        names.append(name)
        return name

    yield make
    for name in names:
        root.sys.delete_policy(name)


ApproleFactory = Callable[..., VaultAuthConfig]


@pytest.fixture
def make_approle(root: hvac.Client, tmp_path: Path) -> Iterator[ApproleFactory]:
    """Enable AppRole on a unique mount with one role; its secret id sits in a file."""
    mounts: list[str] = []

    def make(
        *, policies: list[str] | None = None, token_ttl: str = "1h", token_max_ttl: str = "24h"
    ) -> VaultAuthConfig:
        mount = unique("approle")
        root.sys.enable_auth_method("approle", path=mount)
        mounts.append(mount)
        root.auth.approle.create_or_update_approle(
            "rotator",
            token_ttl=token_ttl,
            token_max_ttl=token_max_ttl,
            token_policies=policies or ["default"],
            mount_point=mount,
        )
        role_id = root.auth.approle.read_role_id("rotator", mount_point=mount)["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id("rotator", mount_point=mount)["data"]["secret_id"]
        secret_file = tmp_path / f"{mount}-secret-id"
        secret_file.write_text(secret_id + "\n")
        return VaultAuthConfig(method="approle", mount=mount, role_id=role_id, secret_id=SecretRef(file=secret_file))

    yield make
    for mount in mounts:
        root.sys.disable_auth_method(mount)
