"""``rotator audit verify --anchors``: gather the signed anchors (a file or Vault KV) and the key, then verify.

Kept apart from ``service.audit.commands`` because it needs the composition root: the
anchor path in Vault and the signing key (Vault Transit or Ed25519) come from the App.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from service.anchors import Anchor, load_anchors
from service.audit import commands

if TYPE_CHECKING:
    from service.app import App


def _anchors(app: App, spec: str) -> list[tuple[str, Anchor]]:
    def read_vault(path: str | None) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
        sink = app.anchor_vault(path)
        return f"vault kv2 {sink.mount}/{sink.path}", sink.read_all()

    return load_anchors(spec, read_vault=read_vault)


def report(app: App, args: argparse.Namespace, *, out: TextIO) -> int:
    """``rotator audit report``: the window's activity, the chain's verification and the newest signed anchor."""
    anchors = _anchors(app, args.anchors) if args.anchors else None
    return commands.audit_report(
        app.engine,
        since=args.since,
        until=args.until,
        targets=args.target,
        fmt=args.format,
        output=Path(args.output),
        out=out,
        verify=not args.no_verify,
        anchors=anchors,
        anchors_from=args.anchors or "",
        signer=app.anchor_signer if anchors is not None else None,
    )


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filters ``list`` and ``export`` share, as keyword arguments."""
    return {
        "secrets": args.secret,
        "targets": args.target,
        "events": args.event,
        "actors": args.actor,
        "runs": args.run,
        "since": args.since,
        "until": args.until,
    }


def export(app: App, args: argparse.Namespace, *, out: TextIO) -> int:
    """``rotator audit export``: to standard output or ``-o FILE`` (appended to when following)."""
    options: dict[str, Any] = {
        "fmt": args.format,
        "after_seq": args.after_seq,
        "follow": args.follow,
        "poll_seconds": args.poll,
        **filters(args),
    }
    if not args.output:
        return commands.audit_export(app.engine, **options, out=out)
    try:
        handle = Path(args.output).open("a" if args.follow else "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as e:
        sys.stderr.write(f"error: cannot write the export to {args.output}: {e.strerror}\n")
        return commands.EXIT_USAGE
    with handle:
        return commands.audit_export(app.engine, **options, out=handle)


def verify(app: App, args: argparse.Namespace, *, out: TextIO) -> int:
    """``rotator audit verify``, with ``--anchors`` when given."""
    if args.anchors:
        return verify_anchored(app, spec=args.anchors, anchor=args.anchor, as_json=args.json, out=out)
    return commands.audit_verify(app.engine, anchor=args.anchor, as_json=args.json, out=out)


def verify_anchored(app: App, *, spec: str, anchor: str | None, as_json: bool, out: TextIO) -> int:
    """Check every anchor kept at ``spec`` (``FILE`` or ``vault:[MOUNT/PATH]``) and that the chain holds it."""

    anchors = _anchors(app, spec)
    return commands.audit_verify(
        app.engine,
        anchor=anchor,
        as_json=as_json,
        out=out,
        anchors=anchors,
        anchors_from=spec,
        signer=app.anchor_signer,
    )
