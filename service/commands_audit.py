"""``rotator audit verify --anchors``: gather the signed anchors (a file or Vault KV) and the key, then verify.

Kept apart from ``service.audit.commands`` because it needs the composition root: the
anchor path in Vault and the signing key (Vault Transit or Ed25519) come from the App.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from service.anchors import load_anchors
from service.audit import commands

if TYPE_CHECKING:
    from service.app import App


def verify_anchored(app: App, *, spec: str, anchor: str | None, as_json: bool, out: TextIO) -> int:
    """Check every anchor kept at ``spec`` (``FILE`` or ``vault:[MOUNT/PATH]``) and that the chain holds it."""

    def read_vault(path: str | None) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
        sink = app.anchor_vault(path)
        return f"vault kv2 {sink.mount}/{sink.path}", sink.read_all()

    anchors = load_anchors(spec, read_vault=read_vault)
    return commands.audit_verify(
        app.engine,
        anchor=anchor,
        as_json=as_json,
        out=out,
        anchors=anchors,
        anchors_from=spec,
        signer=app.anchor_signer,
    )
