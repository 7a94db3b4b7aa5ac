"""`rotator status` and `/status`: the state of each (target, secret), as rows or a table. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from service.controls import Holds
from service.health import stale
from service.model import RotationKey, RotationState, SecretSpec, short_fingerprint

COLUMNS = (
    "target",
    "secret",
    "last_outcome",
    "last_success_at",
    "failures",
    "next_run_at",
    "fingerprint",
    "verification",
    "stale",
    "hold",
)


def status_rows(
    secrets: Iterable[SecretSpec],
    states: Mapping[RotationKey, RotationState],
    *,
    now: datetime,
    allowance: Callable[[SecretSpec], timedelta],
    holds: Holds | None = None,
) -> list[dict[str, Any]]:
    """One row per configured (target, secret); a key never rotated shows as such.

    ``allowance`` is how old a pair's last success may be before it counts as stale; ``holds``
    are the operators' pauses and pins.
    """
    holds = holds or Holds()
    rows = []
    for secret in secrets:
        for target in secret.targets:
            stored = states.get(RotationKey(target, secret.name))
            state = stored or RotationState(key=RotationKey(target, secret.name))
            rows.append(
                {
                    "target": target,
                    "secret": secret.name,
                    "stale": stale(stored, now=now, allowance=allowance(secret)),
                    "last_outcome": state.last_outcome or "never",
                    "last_error_code": state.last_error_code,
                    "last_attempt_at": _iso(state.last_attempt_at),
                    "last_success_at": _iso(state.last_success_at),
                    "failures": state.consecutive_failures,
                    "next_run_at": _iso(state.next_run_at),
                    "fingerprint": short_fingerprint(state.fingerprint),
                    "source_version": state.source_version,
                    "verification": state.verification,
                    "verified_at": _iso(state.verified_at),
                    "credential_expires_at": _iso(state.credential_expires_at),
                    "confirmed_at": _iso(state.confirmed_at),
                    "target_identity": state.target_identity,
                    **_hold_fields(holds, RotationKey(target, secret.name), deferred=state.last_outcome == "deferred"),
                }
            )
    return rows


def _hold_fields(holds: Holds, key: RotationKey, *, deferred: bool) -> dict[str, Any]:
    """``paused`` (who, why), ``pinned_version``, and ``hold``: the short form for the table.

    A pair whose last run a deny window deferred says ``window`` (its next run is the window's end).
    """
    pause, pin = holds.pause_of(key), holds.pin_of(key)
    words = ("paused" if pause else "", f"pinned v{pin.version}" if pin else "", "window" if deferred else "")
    short = [word for word in words if word]
    return {
        "paused": pause.describe() if pause else None,
        "pinned_version": pin.version if pin else None,
        "pinned": pin.describe() if pin else None,
        "hold": ", ".join(short) or None,
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Counts over the rows: pairs, stale, never rotated, failing."""
    return {
        "pairs": len(rows),
        "stale": sum(1 for row in rows if row["stale"]),
        "never": sum(1 for row in rows if row["last_outcome"] == "never"),
        "failing": sum(1 for row in rows if row["failures"]),
    }


def filter_rows(
    rows: Iterable[dict[str, Any]], *, targets: Iterable[str] = (), secrets: Iterable[str] = (), stale: bool = False
) -> list[dict[str, Any]]:
    """The rows of these targets and secrets (none given: all), only the stale ones if asked."""
    wanted_targets, wanted_secrets = set(targets), set(secrets)
    return [
        row
        for row in rows
        if (not wanted_targets or row["target"] in wanted_targets)
        and (not wanted_secrets or row["secret"] in wanted_secrets)
        and (not stale or bool(row.get("stale")))
    ]


def render_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of the main columns."""
    cells = [[str(row.get(col) if row.get(col) is not None else "-") for col in COLUMNS] for row in rows]
    widths = [max(len(col), *(len(line[i]) for line in cells)) for i, col in enumerate(COLUMNS)]
    lines = ["  ".join(col.upper().ljust(w) for col, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
