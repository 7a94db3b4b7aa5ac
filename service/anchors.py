"""Signed anchors: the audit chain head, signed and kept off the database.

After each sweep that moved the chain head, ``Anchorer.head_moved`` signs
``{seq, row_hash, time, instance, key}`` and hands the anchor to each sink: the log, an
append-only JSON lines file, Vault KV v2 (``service.vault.anchors``). A sink that fails is
reported to ``on_failure`` (logged and counted by the caller) and the others still run:
the worker keeps rotating. ``read_anchor_file`` and ``check_signatures`` are the verify side.

The signed payload is the canonical JSON (sorted keys, no whitespace) of the five members
above; ``signature`` is ``ed25519:<base64>`` or Vault Transit's ``vault:v<n>:<base64>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from service import logs
from service.errors import ConfigError, ConfigIssue, RotatorError
from service.model import ChainHead, format_time

if TYPE_CHECKING:  # cryptography (about 8 MB) is imported only where an Ed25519 key is configured
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logs.get_logger("rotator.anchors")
_MEMBERS = ("seq", "row_hash", "time", "instance", "key", "signature")


class AnchorError(RotatorError):
    """An anchor that cannot be trusted: a bad line, a bad signature, another key (exit code 1)."""

    code = "anchor_invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """One signed chain head, as written to every sink."""

    seq: int
    row_hash: str
    time: str
    instance: str
    key: str  # which key signed it: ed25519:<id> or transit:<mount>/<name>; "" when unsigned
    signature: str = ""

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.seq, self.row_hash)

    def payload(self) -> bytes:
        """The bytes that are signed: every member but the signature, canonical JSON."""
        signed = {"seq": self.seq, "row_hash": self.row_hash, "time": self.time, "instance": self.instance}
        return json.dumps({**signed, "key": self.key}, sort_keys=True, separators=(",", ":")).encode()

    def document(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _MEMBERS}


def parse_anchor_document(document: object, *, where: str) -> Anchor:
    """An anchor from its JSON object; ``AnchorError`` naming ``where`` if it is not one."""
    if not isinstance(document, dict) or set(document) != set(_MEMBERS):
        raise AnchorError(f"{where}: not an anchor (expected a JSON object with {', '.join(_MEMBERS)})")
    seq, row_hash = document["seq"], document["row_hash"]
    if not isinstance(seq, int) or seq < 1 or not _is_hex64(row_hash):
        raise AnchorError(f"{where}: not an anchor (seq must be a positive integer, row_hash 64 hex digits)")
    if not all(isinstance(document[name], str) for name in ("time", "instance", "key", "signature")):
        raise AnchorError(f"{where}: not an anchor (time, instance, key and signature must be strings)")
    return Anchor(**document)


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# --- signing -----------------------------------------------------------------------


class Signer(Protocol):
    """Signs and checks anchor payloads with one key."""

    @property
    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> str: ...

    def verify(self, payload: bytes, signature: str) -> bool: ...


class Ed25519Signer:
    """An Ed25519 key from PEM (PKCS#8 private key; a public key can only verify)."""

    def __init__(self, *, private: Ed25519PrivateKey | None = None, public: Ed25519PublicKey) -> None:
        from cryptography.hazmat.primitives import serialization

        self._private = private
        self._public = public
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._key_id = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def from_pem(cls, pem: str, *, where: str) -> Ed25519Signer:
        """The signer of a PEM private key (or a verifier of a PEM public key); ConfigError naming ``where``."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

        data = pem.encode()
        try:
            key: object = (
                serialization.load_pem_public_key(data)
                if b"PUBLIC KEY" in data
                else serialization.load_pem_private_key(data, password=None)
            )
        except (ValueError, TypeError):
            key = None
        if isinstance(key, Ed25519PrivateKey):
            return cls(private=key, public=key.public_key())
        if isinstance(key, Ed25519PublicKey):
            return cls(public=key)
        raise ConfigError("configuration", [ConfigIssue(where, "not an Ed25519 key in PEM (PKCS#8) form")])

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, payload: bytes) -> str:
        if self._private is None:
            raise ConfigError("configuration", [ConfigIssue("audit.anchors.signing.key", "a public key cannot sign")])
        return "ed25519:" + base64.b64encode(self._private.sign(payload)).decode()

    def verify(self, payload: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        prefix, _, encoded = signature.partition(":")
        try:
            self._public.verify(base64.b64decode(encoded, validate=True), payload)
        except (InvalidSignature, ValueError):
            return False
        return prefix == "ed25519"


# --- sinks -------------------------------------------------------------------------


class AnchorSink(Protocol):
    """Somewhere off the database that keeps anchors."""

    @property
    def name(self) -> str: ...

    def write(self, anchor: Anchor) -> None: ...


class LogSink:
    """The ``audit.anchor`` log line, as the log pipeline has always received it."""

    name = "log"

    def write(self, anchor: Anchor) -> None:
        log.info("audit.anchor", anchor=str(anchor.head), **anchor.document())


class FileSink:
    """One JSON line per anchor, appended and flushed to disk (O_APPEND: never rewritten)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, anchor: Anchor) -> None:
        line = json.dumps(anchor.document(), sort_keys=True, separators=(",", ":")) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line.encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class Anchorer:
    """Signs a chain head that moved and writes it to every sink; a failing sink never stops the rest."""

    def __init__(
        self,
        *,
        signer: Signer | None,
        sinks: Sequence[AnchorSink],
        instance: str,
        clock: Callable[[], datetime],
        on_failure: Callable[[str, RotatorError | OSError], None],
    ) -> None:
        self._signer = signer
        self._sinks = sinks
        self._instance = instance
        self._clock = clock
        self._on_failure = on_failure
        self._last: ChainHead | None = None
        self._lock = threading.Lock()  # sweeps may finish on two threads: anchors go out one at a time, in order

    def head_moved(self, head: ChainHead) -> Anchor | None:
        """Anchor ``head`` unless it is the head anchored last; the anchor, or None."""
        with self._lock:
            if head == self._last:
                return None
            try:
                anchor = self._sign(head)
            except RotatorError as e:
                self._on_failure("signing", e)
                return None
            except Exception as e:  # noqa: BLE001 (an anchor must never stop the worker: counted and logged)
                self._on_failure("signing", _unexpected(e))
                return None
            written = [self._write(sink, anchor) for sink in self._sinks]
            if all(written):
                self._last = head  # a sink that failed gets the next head, even if this one does not move
            return anchor

    def _sign(self, head: ChainHead) -> Anchor:
        key = self._signer.key_id if self._signer is not None else ""
        unsigned = Anchor(
            seq=head.seq, row_hash=head.row_hash, time=format_time(self._clock()), instance=self._instance, key=key
        )
        if self._signer is None:
            return unsigned
        return Anchor(**{**unsigned.document(), "signature": self._signer.sign(unsigned.payload())})

    def _write(self, sink: AnchorSink, anchor: Anchor) -> bool:
        try:
            sink.write(anchor)
        except (RotatorError, OSError) as e:
            self._on_failure(sink.name, e)
            return False
        except Exception as e:  # noqa: BLE001 (an anchor must never stop the worker: counted and logged)
            self._on_failure(sink.name, _unexpected(e))
            return False
        return True


class AnchorUnexpected(RotatorError):
    """An error no adapter translated while anchoring: only its class name travels (its text could hold anything)."""

    code = "anchor_unexpected"


def _unexpected(error: Exception) -> AnchorUnexpected:
    return AnchorUnexpected(f"unexpected {type(error).__name__} while anchoring")


# --- the verify side ---------------------------------------------------------------


VaultReader = Callable[[str | None], tuple[str, list[tuple[int, dict[str, Any]]]]]


def load_anchors(spec: str, *, read_vault: VaultReader) -> list[tuple[str, Anchor]]:
    """``FILE`` or ``vault:[MOUNT/PATH]``: every anchor kept there, with where it came from."""
    if spec.startswith("vault:"):
        where, versions = read_vault(spec.removeprefix("vault:") or None)
        anchors = [(f"{where} version {n}", document) for n, document in versions]
        return [(at, parse_anchor_document(document, where=at)) for at, document in anchors]
    return read_anchor_file(Path(spec))


def read_anchor_file(path: Path) -> list[tuple[str, Anchor]]:
    """Every anchor of a JSON lines file; ``AnchorError`` naming the file and line of a bad one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(str(path), [ConfigIssue("", f"cannot read the anchor file: {e.strerror}")]) from None
    except UnicodeDecodeError:
        raise AnchorError(f"{path}: not a JSON lines file (not UTF-8)") from None
    return list(_parse_lines(lines, where=str(path)))


def _parse_lines(lines: Iterable[str], *, where: str) -> Iterable[tuple[str, Anchor]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        at = f"{where} line {number}"
        try:
            document = json.loads(line)
        except ValueError:
            raise AnchorError(f"{at}: not JSON (a torn or edited line)") from None
        yield at, parse_anchor_document(document, where=at)


def check_signatures(anchors: Sequence[tuple[str, Anchor]], *, signer: Signer | None, where: str) -> None:
    """Every anchor (with where it came from) carries a valid signature by ``signer``'s key, or AnchorError."""
    if not anchors:
        raise AnchorError(f"{where}: holds no anchor (emptied or truncated?)")
    for at, anchor in anchors:
        if not anchor.signature:
            raise AnchorError(f"{at}: anchor {anchor.head} is not signed")
        if signer is None:
            raise AnchorError(f"{at}: no signing key is configured (audit.anchors.signing) to check anchors with")
        if anchor.key != signer.key_id:
            raise AnchorError(
                f"{at}: anchor {anchor.seq} was signed by key {anchor.key!r}, not the configured {signer.key_id!r}"
            )
        if not signer.verify(anchor.payload(), anchor.signature):
            raise AnchorError(f"{at}: anchor {anchor.seq}'s signature does not verify: it was forged or altered")
