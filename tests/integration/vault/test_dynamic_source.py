"""Dynamic sources: OpenBao's database secrets engine issues short-lived PostgreSQL users with a lease."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import hvac
import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.config import SourceConfig
from service.errors import FieldError, SourceError, SourceNotFound
from service.vault import VaultSource
from tests.integration.vault.conftest import FIXED_NOW, unique

LEASE_SECONDS = 90


@pytest.fixture
def database_mount(root: hvac.Client, postgres_admin_url: str) -> Iterator[str]:
    """A database secrets engine whose role "pull" creates PostgreSQL users valid for 90 seconds."""
    admin = make_url(postgres_admin_url)
    mount = unique("database")
    root.sys.enable_secrets_engine("database", path=mount)
    root.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{admin.host}:{admin.port}/{admin.database}"
        "?sslmode=disable",
        username=admin.username,
        password=admin.password or "trust-auth-ignores-this",
        allowed_roles=["pull"],
        mount_point=mount,
    )
    root.secrets.database.create_role(
        name="pull",
        db_name="pg",
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        ],
        default_ttl=f"{LEASE_SECONDS}s",
        max_ttl="300s",
        mount_point=mount,
    )
    yield mount
    root.sys.disable_secrets_engine(mount)  # revokes the leases: OpenBao drops the users


def role_exists(postgres_admin_url: str, name: str) -> bool:
    conninfo = make_url(postgres_admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def test_dynamic_read_records_the_lease(database_mount: str, source: VaultSource, postgres_admin_url: str) -> None:
    """A dynamic read returns a fresh user and password with its lease id, duration and renewability."""
    config = SourceConfig(kind="dynamic", mount=database_mount, path="creds/pull")

    credential = source.read(config)

    assert credential.username.startswith("v-")
    assert credential.password
    assert credential.source.lease_id is not None
    assert credential.source.lease_id.startswith(f"{database_mount}/creds/pull/")
    assert credential.source.lease_duration == LEASE_SECONDS
    assert credential.source.renewable is True
    assert credential.source.version is None
    assert credential.expires_at == FIXED_NOW + timedelta(seconds=LEASE_SECONDS)
    assert role_exists(postgres_admin_url, credential.username)


def test_each_dynamic_read_issues_a_new_credential(database_mount: str, source: VaultSource) -> None:
    """Two reads of a dynamic path are two leases with two different users."""
    config = SourceConfig(kind="dynamic", mount=database_mount, path="creds/pull")

    first, second = source.read(config), source.read(config)

    assert first.username != second.username
    assert first.source.lease_id != second.source.lease_id


def test_dynamic_configured_expiry_field_is_required(database_mount: str, source: VaultSource) -> None:
    """A configured expiry field must be present even on a dynamic source; the lease does not stand in."""
    config = SourceConfig(kind="dynamic", mount=database_mount, path="creds/pull", expiry_field="expires_at")

    with pytest.raises(FieldError, match=r"field 'expires_at' .* is missing") as caught:
        source.read(config)
    assert caught.value.field == "expires_at"


def test_dynamic_unknown_role_is_a_refused_request(database_mount: str, source: VaultSource) -> None:
    """A role the engine does not know (HTTP 400) is a SourceError naming the path and the status."""
    with pytest.raises(SourceError, match=f"dynamic {database_mount}/creds/nobody \\(HTTP 400\\)") as caught:
        source.read(SourceConfig(kind="dynamic", mount=database_mount, path="creds/nobody"))
    assert (caught.value.mount, caught.value.path) == (database_mount, "creds/nobody")


def test_dynamic_path_without_engine_is_not_found(source: VaultSource) -> None:
    """A dynamic path under no mounted engine is SourceNotFound, not an empty credential."""
    mount = unique("nothing")
    with pytest.raises(SourceNotFound, match=f"dynamic {mount}/creds/pull not found"):
        source.read(SourceConfig(kind="dynamic", mount=mount, path="creds/pull"))
