"""KV v2 and KV v1 sources read from a real OpenBao server."""

from __future__ import annotations

from datetime import UTC, datetime

import hvac
import pytest

from service.config import SourceConfig, VaultRef
from service.errors import FieldError, SourceNotFound, SourceVersionDeleted
from service.vault import VaultSource
from tests.integration.vault.conftest import FIXED_NOW


def write_kv2(root: hvac.Client, mount: str, path: str, **fields: object) -> int:
    response = root.secrets.kv.v2.create_or_update_secret(path, secret=fields, mount_point=mount)
    return int(response["data"]["version"])


def test_kv2_reads_current_version_with_its_number(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """A KV v2 read returns the newest fields, the version number, Vault's request id and the read time."""
    write_kv2(root, kv2_mount, "acme", username="robot", password="first-pass")
    version = write_kv2(root, kv2_mount, "acme", username="robot", password="second-pass")

    credential = source.read(SourceConfig(mount=kv2_mount, path="acme"))

    assert (credential.username, credential.password) == ("robot", "second-pass")
    assert credential.source.version == version == 2
    assert credential.source.mount == kv2_mount
    assert credential.source.path == "acme"
    assert credential.source.request_id
    assert credential.source.lease_id is None
    assert credential.read_at == FIXED_NOW


def test_kv2_rotation_is_seen_on_next_read(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """After the secret is rotated in Vault, the next read returns the new value and version."""
    write_kv2(root, kv2_mount, "team/app", username="u", password="old")
    before = source.read(SourceConfig(mount=kv2_mount, path="team/app"))
    write_kv2(root, kv2_mount, "team/app", username="u", password="new")

    after = source.read(SourceConfig(mount=kv2_mount, path="/team/app/"))

    assert (before.password, before.source.version) == ("old", 1)
    assert (after.password, after.source.version) == ("new", 2)
    assert after.source.request_id != before.source.request_id


def test_kv2_pinned_version_reads_the_old_value(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """A pinned version (rollback) reads that version, not the newest."""
    write_kv2(root, kv2_mount, "acme", username="u", password="v1-pass")
    write_kv2(root, kv2_mount, "acme", username="u", password="v2-pass")

    credential = source.read(SourceConfig(mount=kv2_mount, path="acme", version=1))

    assert (credential.password, credential.source.version) == ("v1-pass", 1)


def test_kv2_deleted_current_version_is_an_error(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """A soft-deleted current version is SourceVersionDeleted naming the version and how to undelete."""
    write_kv2(root, kv2_mount, "acme", username="u", password="p1")
    write_kv2(root, kv2_mount, "acme", username="u", password="p2")
    root.secrets.kv.v2.delete_latest_version_of_secret("acme", mount_point=kv2_mount)

    with pytest.raises(SourceVersionDeleted) as caught:
        source.read(SourceConfig(mount=kv2_mount, path="acme"))

    message = str(caught.value)
    assert "version 2" in message
    assert f"kv2 {kv2_mount}/acme" in message
    assert "undelete" in message
    assert "source.version" in message
    assert (caught.value.mount, caught.value.path) == (kv2_mount, "acme")
    assert "p1" not in message
    assert "p2" not in message


def test_kv2_destroyed_pinned_version_is_an_error(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """A destroyed pinned version is SourceVersionDeleted saying it cannot be recovered."""
    write_kv2(root, kv2_mount, "acme", username="u", password="p1")
    write_kv2(root, kv2_mount, "acme", username="u", password="p2")
    root.secrets.kv.v2.destroy_secret_versions("acme", versions=[1], mount_point=kv2_mount)

    with pytest.raises(SourceVersionDeleted, match=r"version 1 .* destroyed and cannot be recovered"):
        source.read(SourceConfig(mount=kv2_mount, path="acme", version=1))


def test_kv2_missing_path_is_not_found(kv2_mount: str, source: VaultSource) -> None:
    """A path with nothing stored is SourceNotFound naming mount and path, never an empty credential."""
    with pytest.raises(SourceNotFound, match=f"kv2 {kv2_mount}/nothing/here not found") as caught:
        source.read(SourceConfig(mount=kv2_mount, path="nothing/here"))
    assert (caught.value.mount, caught.value.path) == (kv2_mount, "nothing/here")


def test_kv2_missing_pinned_version_is_not_found(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """Pinning a version that was never written is SourceNotFound naming that version."""
    write_kv2(root, kv2_mount, "acme", username="u", password="p")

    with pytest.raises(SourceNotFound, match="version 7 does not exist"):
        source.read(SourceConfig(mount=kv2_mount, path="acme", version=7))


def test_unknown_mount_is_not_found(source: VaultSource) -> None:
    """A mount with no secrets engine is SourceNotFound that says so."""
    with pytest.raises(SourceNotFound, match="no secrets engine is mounted at no-such-mount/"):
        source.read(SourceConfig(mount="no-such-mount", path="acme"))


def test_kv1_source_on_a_kv2_mount_says_so(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """Reading a KV v2 mount as kind kv1 is SourceNotFound telling the operator to set kind kv2."""
    write_kv2(root, kv2_mount, "acme", username="u", password="p")

    with pytest.raises(SourceNotFound, match='KV v2 mount; set kind = "kv2"'):
        source.read(SourceConfig(kind="kv1", mount=kv2_mount, path="acme"))


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"username": "u"}, "field 'password' .* is missing \\(fields present: username\\)"),
        ({"username": "u", "password": ""}, "field 'password' .* is empty"),
        ({"username": "u", "password": "   "}, "field 'password' .* is empty"),
        ({"username": "u", "password": 12345}, "field 'password' .* is of type int, not a string"),
        ({"username": "u", "password": {"nested": "x"}}, "field 'password' .* is of type dict, not a string"),
    ],
)
def test_bad_password_field_is_a_field_error(
    root: hvac.Client, kv2_mount: str, source: VaultSource, fields: dict[str, object], problem: str
) -> None:
    """A missing, empty or non-string mapped field is a FieldError naming the field, never its value."""
    write_kv2(root, kv2_mount, "acme", **fields)

    with pytest.raises(FieldError, match=problem) as caught:
        source.read(SourceConfig(mount=kv2_mount, path="acme"))

    assert caught.value.field == "password"
    assert (caught.value.mount, caught.value.path) == (kv2_mount, "acme")
    assert "12345" not in str(caught.value)
    assert "nested" not in str(caught.value)


def test_field_mapping_registry_and_expiry(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """Mapped fields give username, token, registry host and an RFC 3339 expiry."""
    write_kv2(
        root,
        kv2_mount,
        "ghcr",
        login="bot",
        access_token="tok-123",
        host="ghcr.io",
        not_after="2030-02-01T00:00:00Z",
    )
    config = SourceConfig(
        mount=kv2_mount,
        path="ghcr",
        username_field="login",
        password_field="access_token",
        registry_field="host",
        expiry_field="not_after",
    )

    credential = source.read(config)

    assert (credential.username, credential.password, credential.registry) == ("bot", "tok-123", "ghcr.io")
    assert credential.expires_at == datetime(2030, 2, 1, tzinfo=UTC)


def test_bad_expiry_is_a_field_error(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """An expiry field that is not a time is a FieldError naming the expiry field."""
    write_kv2(root, kv2_mount, "acme", username="u", password="p", expires="next tuesday")

    with pytest.raises(FieldError, match=r"field 'expires' .* is not an expiry time") as caught:
        source.read(SourceConfig(mount=kv2_mount, path="acme", expiry_field="expires"))
    assert caught.value.field == "expires"


def test_kv1_reads_fields_without_version(root: hvac.Client, kv1_mount: str, source: VaultSource) -> None:
    """A KV v1 read maps fields and has no version, no lease id and no lease duration without a ttl."""
    root.secrets.kv.v1.create_or_update_secret("acme", secret={"username": "u", "password": "p"}, mount_point=kv1_mount)

    credential = source.read(SourceConfig(kind="kv1", mount=kv1_mount, path="acme"))

    assert (credential.username, credential.password) == ("u", "p")
    assert credential.source.version is None
    assert credential.source.lease_duration is None
    assert credential.source.lease_id is None
    assert credential.source.request_id


def test_kv1_ttl_gives_lease_duration_without_lease(root: hvac.Client, kv1_mount: str, source: VaultSource) -> None:
    """A KV v1 secret with a ttl key reports its lease duration but no lease id and is not renewable."""
    root.secrets.kv.v1.create_or_update_secret(
        "acme", secret={"username": "u", "password": "p", "ttl": "45m"}, mount_point=kv1_mount
    )

    credential = source.read(SourceConfig(kind="kv1", mount=kv1_mount, path="acme"))

    assert credential.source.lease_duration == 45 * 60
    assert credential.source.lease_id is None
    assert credential.source.renewable is False


def test_kv1_missing_path_is_not_found(kv1_mount: str, source: VaultSource) -> None:
    """A KV v1 path with nothing stored is SourceNotFound."""
    with pytest.raises(SourceNotFound, match=f"kv1 {kv1_mount}/ghost not found"):
        source.read(SourceConfig(kind="kv1", mount=kv1_mount, path="ghost"))


def test_read_ref_reads_one_field_of_kv2_and_kv1(
    root: hvac.Client, kv2_mount: str, kv1_mount: str, source: VaultSource
) -> None:
    """read_ref returns a single field (the audit HMAC key) from KV v2 and KV v1."""
    write_kv2(root, kv2_mount, "rotator/audit", hmac_key="k2-secret-value")
    root.secrets.kv.v1.create_or_update_secret("rotator/db", secret={"password": "k1-value"}, mount_point=kv1_mount)

    assert source.read_ref(VaultRef(mount=kv2_mount, path="rotator/audit", field="hmac_key")) == "k2-secret-value"
    assert source.read_ref(VaultRef(mount=kv1_mount, path="rotator/db", field="password", kv_version=1)) == "k1-value"


def test_read_ref_missing_field_is_a_field_error(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """read_ref on a secret without the field is a FieldError naming it."""
    write_kv2(root, kv2_mount, "rotator/audit", other="x")

    with pytest.raises(FieldError, match="field 'hmac_key'"):
        source.read_ref(VaultRef(mount=kv2_mount, path="rotator/audit", field="hmac_key"))


def test_credential_repr_masks_the_password(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """The credential's repr shows username and source but never the password."""
    write_kv2(root, kv2_mount, "acme", username="robot", password="sentinel-pass-4711")

    credential = source.read(SourceConfig(mount=kv2_mount, path="acme"))

    assert "sentinel-pass-4711" not in repr(credential)
    assert "robot" in repr(credential)
