"""Registry credentials read from Vault: KV v2 (current or pinned version), KV v1, dynamic leases.

``VaultSource.read`` implements ``service.ports.CredentialSource`` (the engine reads each
source once per sweep, ``service.engine.once``); ``read_ref`` reads one field of a KV secret
(audit HMAC key, service keys).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import hvac
import hvac.exceptions

from service.config import VaultRef
from service.errors import SourceNotFound
from service.logs import get_logger
from service.model import RegistryCredential, SourceInfo, SourceSpec
from service.vault.mapping import Location, RawSecret, deleted_version, deletion_metadata, map_credential, text_field
from service.vault.session import VaultSession

if TYPE_CHECKING:
    from service.ports import CredentialSource

log = get_logger("rotator.vault")


class VaultSource:
    """Reads sources through a shared ``VaultSession``."""

    def __init__(self, *, session: VaultSession, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    def read(self, source: SourceSpec) -> RegistryCredential:
        """Read one source now and map its fields. Raises ``SourceError`` subclasses."""
        return map_credential(self.fetch(source), source)

    def read_ref(self, ref: VaultRef) -> str:
        """One field of a KV v1 or v2 secret (current version), e.g. the audit HMAC key."""
        at = Location(kind=f"kv{ref.kv_version}", mount=ref.mount.strip("/"), path=ref.path.strip("/"))
        return text_field(self._fetch_at(at).data, ref.field, at=at)

    def fetch(self, source: SourceSpec) -> RawSecret:
        """The raw fields of one read of ``source`` and where they came from."""
        return self._fetch_at(Location.of(source))

    def _fetch_at(self, at: Location) -> RawSecret:
        reader = {"kv2": _read_kv2, "kv1": _read_kv1, "dynamic": _read_dynamic}[at.kind]
        response = self._session.request(lambda client: reader(client, at), at=at)
        raw = _raw(response, at=at, read_at=self._clock())
        log.debug(  # the rotation's canonical line carries request_id as vault_request_id: one line per rotation
            "vault.read",
            kind=at.kind,
            mount=at.mount,
            path=at.path,
            version=raw.info.version,
            request_id=raw.info.request_id,
            lease_duration=raw.info.lease_duration,
        )
        return raw


def _read_kv2(client: hvac.Client, at: Location) -> Any:
    try:
        return client.secrets.kv.v2.read_secret_version(
            path=at.path, version=at.version, mount_point=at.mount, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath as e:
        metadata = deletion_metadata(e.json)
        if metadata is None:
            raise
    raise deleted_version(metadata, at=at)  # outside the except block: no library exception attached


def _read_kv1(client: hvac.Client, at: Location) -> Any:
    return client.secrets.kv.v1.read_secret(path=at.path, mount_point=at.mount)


def _read_dynamic(client: hvac.Client, at: Location) -> Any:
    # client.read() without its "404 means None": the 404 says whether the mount or the path is missing.
    return client.adapter.get(f"/v1/{at.mount}/{at.path}")


def _raw(response: Any, *, at: Location, read_at: datetime) -> RawSecret:
    data = response.get("data") if isinstance(response, Mapping) else None
    metadata: Mapping[str, Any] = {}
    if at.kind == "kv2" and isinstance(data, Mapping):
        metadata = data.get("metadata") or {}
        data = data.get("data")
    if not isinstance(data, Mapping):
        raise SourceNotFound(
            f"{at.describe()} returned no data; check the path and the kind", mount=at.mount, path=at.path
        )
    assert isinstance(response, Mapping)
    return RawSecret(data=data, info=_info(response, metadata, data, at=at), read_at=read_at)


def _info(
    response: Mapping[str, Any], metadata: Mapping[str, Any], data: Mapping[str, Any], *, at: Location
) -> SourceInfo:
    lease_id = response.get("lease_id") or None
    # KV v1 reports a lease duration on every read (the mount default); only a "ttl" field is meaningful.
    meaningful = at.kind == "dynamic" or (at.kind == "kv1" and "ttl" in data)
    return SourceInfo(
        mount=at.mount,
        path=at.path,
        version=metadata.get("version") if at.kind == "kv2" else None,
        request_id=response.get("request_id") or None,
        lease_duration=(response.get("lease_duration") or None) if meaningful else None,
        renewable=bool(response.get("renewable")) and lease_id is not None,
        lease_id=lease_id,
    )


if TYPE_CHECKING:

    def _implements_the_port(source: VaultSource) -> CredentialSource:
        return source  # mypy checks that the reader satisfies service.ports.CredentialSource
