"""Vault's part in signed anchors: a Transit signer and a KV v2 path whose versions are the anchors.

``TransitSigner`` signs with ``transit/sign/<key>`` and checks with ``transit/verify/<key>``:
the private key never leaves Vault. ``KvAnchorSink`` writes each anchor as a new version of
one KV v2 secret and reads every kept version back for ``audit verify --anchors vault:``.
Errors come back as ``service.errors`` (``VaultUnavailable`` is exit code 3), never hvac's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hvac
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.errors import SourceError, VaultPermissionDenied
from service.vault.mapping import Location
from service.vault.session import VaultSession

if TYPE_CHECKING:
    from service.anchors import Anchor

Call = Callable[[hvac.Client], Any]


def _verify_locally(public: dict[int, Ed25519PublicKey], payload: bytes, signature: str) -> bool:
    """``vault:v<n>:<base64>``: Ed25519 by version n of the key over the payload itself."""
    _, version, encoded = signature.split(":", 2)
    key = public.get(int(version[1:])) if version[1:].isdigit() else None
    if key is None:
        return False
    try:
        key.verify(base64.b64decode(encoded, validate=True), payload)
    except (InvalidSignature, ValueError):
        return False
    return True


class TransitSigner:
    """A Vault Transit key (ed25519 or ecdsa) that signs anchor payloads."""

    def __init__(self, *, session: VaultSession, mount: str, key: str) -> None:
        self._session = session
        self._mount = mount.strip("/")
        self._key = key
        self._exported: dict[int, Ed25519PublicKey] | None = None
        self._exported_read = False

    @property
    def key_id(self) -> str:
        return f"transit:{self._mount}/{self._key}"

    def sign(self, payload: bytes) -> str:
        """``vault:v<n>:<base64>`` for ``payload``."""
        response = self._call("sign", self._sign_call(payload))
        return str(response["data"]["signature"])

    def verify(self, payload: bytes, signature: str) -> bool:
        """Whether ``signature`` is this key's over ``payload``: locally with the exported Ed25519 public
        key when Vault gives it (thousands of anchors, one request), else Vault's own ``transit/verify``."""
        if not signature.startswith("vault:v"):
            return False
        public = self._public_keys()
        if public is not None:
            return _verify_locally(public, payload, signature)
        try:
            response = self._call("verify", self._verify_call(payload, signature))
        except SourceError as e:
            if "(HTTP 400)" in str(e):  # a malformed signature: Vault refuses the request
                return False
            raise
        return bool(response["data"]["valid"])

    def _public_keys(self) -> dict[int, Ed25519PublicKey] | None:
        """The key's Ed25519 public keys by version, read once; None for another type or without "read"."""
        if not self._exported_read:
            self._exported, self._exported_read = self._read_public_keys(), True
        return self._exported

    def _read_public_keys(self) -> dict[int, Ed25519PublicKey] | None:
        at = Location(kind="transit", mount=self._mount, path=f"keys/{self._key}")
        name, mount = self._key, self._mount
        try:
            data = self._session.request(
                lambda c: c.secrets.transit.read_key(name=name, mount_point=mount),  # type: ignore[no-untyped-call]  # hvac: untyped
                at=at,
            )["data"]
        except SourceError:
            return None  # no "read" on transit/keys/<key>: Vault verifies each signature instead
        if data.get("type") != "ed25519":
            return None
        keys = data.get("keys") or {}
        return {
            int(version): Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
            for version, key in keys.items()
            if isinstance(key, dict) and key.get("public_key")
        }

    def _sign_call(self, payload: bytes) -> Call:
        args = self._args(payload)
        return lambda c: c.secrets.transit.sign_data(**args)  # type: ignore[no-untyped-call]  # hvac: untyped

    def _verify_call(self, payload: bytes, signature: str) -> Call:
        args = self._args(payload)
        return lambda c: c.secrets.transit.verify_signed_data(**args, signature=signature)  # type: ignore[no-untyped-call]  # hvac: untyped

    def _args(self, payload: bytes) -> dict[str, Any]:
        return {"name": self._key, "hash_input": base64.b64encode(payload).decode(), "mount_point": self._mount}

    def _call(self, operation: str, call: Call) -> Any:
        at = Location(kind="transit", mount=self._mount, path=f"{operation}/{self._key}")
        try:
            return self._session.request(call, at=at)
        except VaultPermissionDenied:
            raise VaultPermissionDenied(
                f'permission denied on {self._mount}/{operation}/{self._key}: the Vault policy needs "update" there',
                mount=self._mount,
                path=at.path,
                policy_path=f"{self._mount}/{operation}/{self._key}",
            ) from None
        except SourceError as e:
            raise SourceError(
                f"Vault Transit key {self.key_id} could not {operation}: {e} "
                f"(does the key exist, with type ed25519 or ecdsa-p256?)",
                mount=self._mount,
                path=at.path,
            ) from None


class KvAnchorSink:
    """Anchors as the versions of one KV v2 secret: ``mount/path``."""

    name = "vault"

    def __init__(self, *, session: VaultSession, mount: str, path: str) -> None:
        self._session = session
        self.mount = mount.strip("/")
        self.path = path.strip("/")

    def write(self, anchor: Anchor) -> None:
        """A new version holding the anchor's members (``anchor.document()``)."""
        document = anchor.document()
        self._request(
            "create",
            lambda c: c.secrets.kv.v2.create_or_update_secret(path=self.path, secret=document, mount_point=self.mount),
        )

    def read_all(self) -> list[tuple[int, dict[str, Any]]]:
        """Every version still kept (deleted or destroyed ones skipped), oldest first, with its number."""
        metadata = self._request(
            "read", lambda c: c.secrets.kv.v2.read_secret_metadata(path=self.path, mount_point=self.mount)
        )
        versions = metadata["data"]["versions"]
        kept = sorted(int(n) for n, v in versions.items() if not v.get("deletion_time") and not v.get("destroyed"))
        return [(number, self._version(number)) for number in kept]

    def _version(self, number: int) -> dict[str, Any]:
        response = self._request(
            "read",
            lambda c: c.secrets.kv.v2.read_secret_version(
                path=self.path, version=number, mount_point=self.mount, raise_on_deleted_version=True
            ),
        )
        return dict(response["data"]["data"])

    def _request(self, capability: str, call: Call) -> Any:
        at = Location(kind="kv2", mount=self.mount, path=self.path)
        try:
            return self._session.request(call, at=at)
        except VaultPermissionDenied:
            raise VaultPermissionDenied(
                f"permission denied on the anchor path kv2 {self.mount}/{self.path}: the Vault policy needs"
                f' "{capability}" on "{self.mount}/data/{self.path}"'
                f' (and "read" on "{self.mount}/metadata/{self.path}" to verify)',
                mount=self.mount,
                path=self.path,
                policy_path=f"{self.mount}/data/{self.path}",
            ) from None
