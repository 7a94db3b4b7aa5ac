"""Field mapping, expiry parsing, policy paths and deleted-version messages (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from service.config import SourceConfig
from service.errors import FieldError
from service.model import SourceInfo
from service.vault.mapping import (
    Location,
    RawSecret,
    deleted_version,
    deletion_metadata,
    map_credential,
    parse_expiry,
    text_field,
)

READ_AT = datetime(2030, 1, 1, tzinfo=UTC)
AT = Location(kind="kv2", mount="secret", path="acme")


def raw(data: dict[str, Any], **info: Any) -> RawSecret:
    return RawSecret(data=data, info=SourceInfo(mount="m", path="p", **info), read_at=READ_AT)


@pytest.mark.parametrize(
    ("kind", "mount", "path", "policy_path"),
    [
        ("kv2", "secret", "registries/acme", "secret/data/registries/acme"),
        ("kv2", "/team/kv/", "/acme/", "team/kv/data/acme"),
        ("kv1", "kv", "acme", "kv/acme"),
        ("dynamic", "artifactory", "token/ci", "artifactory/token/ci"),
    ],
)
def test_policy_path(kind: str, mount: str, path: str, policy_path: str) -> None:
    """The policy path needs data/ for KV v2 and is the plain path otherwise."""
    source = SourceConfig(kind=kind, mount=mount, path=path)

    assert Location.of(source).policy_path == policy_path


def test_text_field_returns_the_value() -> None:
    """A present, non-empty string field is returned as is."""
    assert text_field({"password": " p w "}, "password", at=AT) == " p w "


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "is missing (fields present: none)"),
        ({"user": "u", "pass": "x"}, "is missing (fields present: pass, user)"),
        ({"password": ""}, "is empty"),
        ({"password": "\n\t "}, "is empty"),
        ({"password": None}, "is of type NoneType, not a string"),
        ({"password": ["a"]}, "is of type list, not a string"),
        ({"password": True}, "is of type bool, not a string"),
    ],
)
def test_text_field_errors_name_the_field(data: dict[str, Any], problem: str) -> None:
    """Missing, empty and non-string fields are FieldErrors naming the field and source, not the value."""
    with pytest.raises(FieldError) as caught:
        text_field(data, "password", at=AT)

    assert str(caught.value) == f"field 'password' of kv2 secret/acme {problem}"
    assert (caught.value.mount, caught.value.path, caught.value.field) == ("secret", "acme", "password")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2030-02-01T00:00:00Z", datetime(2030, 2, 1, tzinfo=UTC)),
        ("2030-02-01T02:00:00+02:00", datetime(2030, 2, 1, 2, tzinfo=timezone(timedelta(hours=2)))),
        ("2030-02-01T00:00:00.123456789Z", datetime(2030, 2, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        (1896134400, datetime(2030, 2, 1, tzinfo=UTC)),
        (1896134400.5, datetime(2030, 2, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("1896134400", datetime(2030, 2, 1, tzinfo=UTC)),
    ],
)
def test_parse_expiry_accepts_rfc3339_and_epoch(value: object, expected: datetime) -> None:
    """Expiry is RFC 3339 with a timezone or epoch seconds (number or digits)."""
    assert parse_expiry(value, name="expires_at", at=AT) == expected


@pytest.mark.parametrize(
    "value",
    ["2030-02-01T00:00:00", "2030-02-01", "tomorrow", "", "nan", "-5", -5, 10**20, True, None, {"at": 1}],
    ids=repr,
)
def test_parse_expiry_refuses_anything_else(value: object) -> None:
    """A naive time, free text, a negative or absurd number, a bool or null is a FieldError naming the field."""
    with pytest.raises(FieldError, match="field 'expires_at' of kv2 secret/acme is not an expiry time") as caught:
        parse_expiry(value, name="expires_at", at=AT)

    assert caught.value.field == "expires_at"


def test_map_credential_follows_the_field_mapping() -> None:
    """Username, password, registry and expiry come from the configured fields."""
    source = SourceConfig(
        path="p", username_field="login", password_field="token", registry_field="host", expiry_field="until"
    )
    credential = map_credential(
        raw({"login": "bot", "token": "t", "host": "ghcr.io", "until": "2030-03-01T00:00:00Z"}, version=4), source
    )

    assert (credential.username, credential.password, credential.registry) == ("bot", "t", "ghcr.io")
    assert credential.expires_at == datetime(2030, 3, 1, tzinfo=UTC)
    assert credential.source.version == 4
    assert credential.read_at == READ_AT


def test_map_credential_missing_registry_field_is_an_error() -> None:
    """A configured registry field that the secret lacks is a FieldError, not a silent default."""
    with pytest.raises(FieldError, match="field 'host'"):
        map_credential(raw({"username": "u", "password": "p"}), SourceConfig(path="p", registry_field="host"))


def test_dynamic_source_expires_with_its_lease() -> None:
    """Without an expiry field, a dynamic credential expires when its lease ends."""
    data = {"username": "u", "password": "p"}
    lease = {"lease_id": "db/creds/r/abc", "lease_duration": 600, "renewable": True}

    dynamic = map_credential(raw(data, **lease), SourceConfig(kind="dynamic", path="p"))
    kv1 = map_credential(raw(data, lease_duration=600), SourceConfig(kind="kv1", path="p"))

    assert dynamic.expires_at == READ_AT + timedelta(seconds=600)
    assert kv1.expires_at is None


def test_raw_secret_repr_shows_field_names_only() -> None:
    """A raw read prints its field names, never the values."""
    text = repr(raw({"username": "u", "password": "sentinel-4711"}))

    assert "sentinel-4711" not in text
    assert "password" in text


def test_deleted_version_says_how_to_undelete() -> None:
    """A deleted version names the version and the undelete command, and suggests pinning another."""
    error = deleted_version({"version": 3, "deletion_time": "2030-01-01T00:00:00Z", "destroyed": False}, at=AT)

    assert str(error) == (
        "version 3 of kv2 secret/acme was deleted at 2030-01-01T00:00:00Z; undelete it "
        "(bao kv undelete -mount=secret -versions=3 acme) or pin another version (source.version) "
        "to read an older value"
    )


def test_destroyed_version_cannot_be_recovered() -> None:
    """A destroyed version says it is gone for good."""
    error = deleted_version({"version": 2, "deletion_time": "", "destroyed": True}, at=AT)

    assert "version 2 of kv2 secret/acme was destroyed and cannot be recovered" in str(error)


@pytest.mark.parametrize(
    ("body", "deleted"),
    [
        ({"data": {"data": None, "metadata": {"deletion_time": "2030-01-01T00:00:00Z", "destroyed": False}}}, True),
        ({"data": {"data": None, "metadata": {"deletion_time": "", "destroyed": True}}}, True),
        ({"data": {"data": None, "metadata": {"deletion_time": "", "destroyed": False}}}, False),
        ({"errors": []}, False),
        (None, False),
        ("not json", False),
    ],
)
def test_deletion_metadata_recognises_deleted_versions(body: object, deleted: bool) -> None:
    """Only a 404 whose metadata has a deletion time or the destroyed flag is a deleted version."""
    assert (deletion_metadata(body) is not None) is deleted
