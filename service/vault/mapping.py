"""Pure decisions of the Vault source: where a read happens, how fields map, what a deletion means.

Nothing here does I/O or imports hvac, so every rule is tested without a server. Messages
name the kind, mount, path, version and field of a source, never a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.errors import FieldError, SourceVersionDeleted
from service.model import MASK, RegistryCredential, SourceInfo, SourceSpec


@dataclass(frozen=True, slots=True)
class Location:
    """Where one Vault request goes, in the words an operator configured."""

    kind: str  # kv2 | kv1 | dynamic for sources; auth | token for the session's own requests
    mount: str
    path: str
    version: int | None = None

    @classmethod
    def of(cls, source: SourceSpec) -> Location:
        return cls(kind=source.kind, mount=source.mount.strip("/"), path=source.path.strip("/"), version=source.version)

    @property
    def policy_path(self) -> str:
        """The path a Vault policy must grant "read" on (KV v2 reads go through ``data/``)."""
        if self.kind == "kv2":
            return f"{self.mount}/data/{self.path}"
        return f"{self.mount}/{self.path}"

    def describe(self) -> str:
        pinned = f" version {self.version}" if self.version is not None else ""
        return f"{self.kind} {self.mount}/{self.path}{pinned}"


@dataclass(frozen=True, slots=True)
class RawSecret:
    """The fields of one Vault read and where they came from. ``repr`` masks the fields."""

    data: Mapping[str, Any] = field(repr=False)
    info: SourceInfo
    read_at: datetime

    def __repr__(self) -> str:
        return f"RawSecret(fields={sorted(self.data)!r}, data={MASK!r}, info={self.info!r})"


def text_field(data: Mapping[str, Any], name: str, *, at: Location) -> str:
    """The value of field ``name``: present, a string, not blank; else a FieldError naming it."""
    if name not in data:
        raise missing_field(data, name, at=at)
    value = data[name]
    if not isinstance(value, str):
        raise _field_error(f"is of type {type(value).__name__}, not a string", name=name, at=at)
    if not value.strip():
        raise _field_error("is empty", name=name, at=at)
    return value


def missing_field(data: Mapping[str, Any], name: str, *, at: Location) -> FieldError:
    """The error for a mapped field the secret does not have; lists the field names it has."""
    known = ", ".join(sorted(data)) or "none"
    return _field_error(f"is missing (fields present: {known})", name=name, at=at)


def _field_error(problem: str, *, name: str, at: Location) -> FieldError:
    return FieldError(f"field {name!r} of {at.describe()} {problem}", mount=at.mount, path=at.path, field=name)


def parse_expiry(value: object, *, name: str, at: Location) -> datetime:
    """An expiry field as an aware datetime: RFC 3339 text, or epoch seconds (number or digits)."""
    moment = _epoch(value) if not isinstance(value, str) or _numeric(value) else _rfc3339(value)
    if moment is None:
        raise _field_error(
            "is not an expiry time (expected RFC 3339 with a timezone, e.g. 2030-01-31T12:00:00Z, or epoch seconds)",
            name=name,
            at=at,
        )
    return moment


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _epoch(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _rfc3339(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def map_credential(raw: RawSecret, source: SourceSpec) -> RegistryCredential:
    """Turn the fields of one read into a credential, following the source's field mapping."""
    at = Location.of(source)
    return RegistryCredential(
        username=text_field(raw.data, source.username_field, at=at),
        password=text_field(raw.data, source.password_field, at=at),
        source=raw.info,
        read_at=raw.read_at,
        registry=text_field(raw.data, source.registry_field, at=at) if source.registry_field else None,
        expires_at=credential_expiry(raw, source, at=at),
    )


def credential_expiry(raw: RawSecret, source: SourceSpec, *, at: Location) -> datetime | None:
    """The mapped expiry field; without one, the end of a dynamic source's lease."""
    name = source.expiry_field
    if name is None:
        return lease_end(raw) if source.kind == "dynamic" and raw.info.lease_id else None
    if name not in raw.data:
        raise missing_field(raw.data, name, at=at)
    return parse_expiry(raw.data[name], name=name, at=at)


def lease_end(raw: RawSecret) -> datetime | None:
    """When the lease of a dynamic read ends (read time plus lease duration), if it has one."""
    if not raw.info.lease_duration:
        return None
    return raw.read_at + timedelta(seconds=raw.info.lease_duration)


def deleted_version(metadata: Mapping[str, Any], *, at: Location) -> SourceVersionDeleted:
    """The error for a KV v2 version that was deleted or destroyed, saying how to recover."""
    version = metadata.get("version", at.version)
    where = f"{at.kind} {at.mount}/{at.path}"
    pin = "or pin another version (source.version) to read an older value"
    if metadata.get("destroyed"):
        message = (
            f"version {version} of {where} was destroyed and cannot be recovered; "
            f"write a new version to {at.mount}/{at.path} {pin}"
        )
    else:
        message = (
            f"version {version} of {where} was deleted at {metadata.get('deletion_time')}; "
            f"undelete it (bao kv undelete -mount={at.mount} -versions={version} {at.path}) {pin}"
        )
    return SourceVersionDeleted(message, mount=at.mount, path=at.path)


def deletion_metadata(body: object) -> Mapping[str, Any] | None:
    """The KV v2 metadata of a 404 that reports a deleted or destroyed version, else None."""
    if not isinstance(body, Mapping):
        return None
    data = body.get("data")
    metadata = data.get("metadata") if isinstance(data, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None
    return metadata if metadata.get("deletion_time") or metadata.get("destroyed") else None
