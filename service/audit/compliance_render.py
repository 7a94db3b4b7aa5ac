"""The compliance report as a document (JSON) and as one self-contained HTML file.

The HTML has no scripts, no fonts, no fetches: inline CSS (with ``@media print``) and two
inline SVG charts drawn by the small functions below, a bar per day of failures and a
timeline of rotations per secret. Everything shown comes from ``report_document``, so the
JSON and the HTML always agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Any

from service.audit.compliance import FAILURES, OUTCOMES, Activity
from service.model import format_time

TIMELINE_SECRETS = 30  # secrets drawn in the timeline (the busiest); the table lists every pair
RIGHT = 28  # room for the last day's label


def report_document(
    activity: Activity, *, chain: dict[str, Any] | None, last_anchor: dict[str, Any] | None, generated_at: datetime
) -> dict[str, Any]:
    """The report as JSON-ready data; member names are stable (docs/audit.md)."""
    pairs = [pair.document() for pair in activity.pairs]
    window = activity.window
    return {
        "generated_at": format_time(generated_at),
        "since": format_time(window.since),
        "until": format_time(window.until),
        "targets": list(window.targets),
        "totals": {event: sum(pair[event] for pair in pairs) for event in OUTCOMES},
        "chain": chain,
        "last_anchor": last_anchor,
        "pairs": pairs,
        "manual_actions": activity.manual,
        "manual_actions_total": activity.manual_total,
        "failures_per_day": [{"day": day, "count": count} for day, count in activity.failures_per_day],
        "rotations_per_day": [
            {"secret": secret, "day": day, "applied": applied, "not_applied": other}
            for secret, day, applied, other in activity.rotations_per_day
        ],
    }


# --- charts -------------------------------------------------------------------------


def _days(since: str, until: str) -> list[str]:
    first = datetime.fromisoformat(since.replace("Z", "+00:00")).date()
    last = (datetime.fromisoformat(until.replace("Z", "+00:00")) - timedelta(microseconds=1)).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def failures_chart(per_day: Sequence[dict[str, Any]], days: Sequence[str]) -> str:
    """Bars of failed, rejected, unknown and interrupted outcomes per day (UTC)."""
    counts = {row["day"]: row["count"] for row in per_day}
    width, height, left, bottom = 720, 160, 40, 24
    step = (width - left - RIGHT) / max(1, len(days))
    top = max([1, *counts.values()])
    bars = []
    for n, day in enumerate(days):
        count = counts.get(day, 0)
        bar = (height - bottom - 8) * count / top
        x, y = left + n * step, height - bottom - bar
        title = f"<title>{day}: {count} failed</title>"
        bars.append(
            f'<rect class="fail" x="{x:.1f}" y="{y:.1f}" width="{max(1.0, step - 1):.1f}" height="{bar:.1f}">'
            f"{title}</rect>"
        )
    labels = _day_labels(days, left=left, step=step, y=height - 6)
    axis = f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}"/>'
    scale = f'<text class="tick" x="{left - 4}" y="14" text-anchor="end">{top}</text>'
    return _svg(width, height, "failures per day", [axis, scale, *bars, *labels])


def timeline_chart(per_day: Sequence[dict[str, Any]], days: Sequence[str]) -> str:
    """One row per secret (the busiest), a mark per day it rotated: green all applied, red any other outcome."""
    by_secret: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for row in per_day:
        by_secret[row["secret"]][row["day"]] = (row["applied"], row["not_applied"])
    busiest = sorted(by_secret, key=lambda s: (-sum(a + f for a, f in by_secret[s].values()), s))[:TIMELINE_SECRETS]
    left, row_height, width = 170, 16, 720
    step = (width - left - RIGHT) / max(1, len(days))
    index = {day: n for n, day in enumerate(days)}
    parts = []
    for r, secret in enumerate(sorted(busiest)):
        y = 4 + r * row_height
        parts.append(f'<text class="name" x="{left - 6}" y="{y + 11}" text-anchor="end">{escape(secret[:26])}</text>')
        for day, (applied, other) in sorted(by_secret[secret].items()):
            if day not in index:
                continue
            kind = "fail" if other else "ok"
            x, bar = left + index[day] * step, max(1.0, step - 1)
            parts.append(
                f'<rect class="{kind}" x="{x:.1f}" y="{y + 2}" width="{bar:.1f}" height="{row_height - 4}">'
                f"<title>{escape(secret)} {day}: {applied} applied, {other} not applied</title></rect>"
            )
    height = 4 + max(1, len(busiest)) * row_height + 22
    parts += _day_labels(days, left=left, step=step, y=height - 6)
    return _svg(width, height, "rotations per secret per day", parts)


def _day_labels(days: Sequence[str], *, left: float, step: float, y: float) -> list[str]:
    every = max(1, len(days) // 6)
    return [
        f'<text class="tick" x="{left + n * step:.1f}" y="{y}">{day[5:]}</text>'
        for n, day in enumerate(days)
        if n % every == 0
    ]


def _svg(width: int, height: int, label: str, parts: Iterable[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet">{"".join(parts)}</svg>'
    )


# --- the page -----------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;
  margin:2em auto;max-width:64em;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}
h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccd;padding-bottom:.2em}
.meta{color:#555}.cards{display:flex;flex-wrap:wrap;gap:.6em}
.card{border:1px solid #ccd;border-radius:6px;padding:.5em .8em}
.card b{display:block;font-size:1.3em}.good{color:#176b2c}.bad{color:#b3261e}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{border-bottom:1px solid #e3e3ea;padding:3px 6px;text-align:left}
th{background:#f3f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:11px;word-break:break-all}
svg .fail{fill:#d1453b}svg .ok{fill:#3a9d5d}svg .axis{stroke:#888}svg text{font-size:10px;fill:#444}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}tr,svg,.card{break-inside:avoid}
  thead{display:table-header-group}a{color:inherit;text-decoration:none}@page{size:A4;margin:14mm}
  svg .fail,svg .ok,th{print-color-adjust:exact;-webkit-print-color-adjust:exact}}
"""


def render_html(document: dict[str, Any]) -> str:
    """The whole report as one HTML page."""
    days = _days(document["since"], document["until"])
    scope = ", ".join(document["targets"]) or "all targets"
    body = [
        "<h1>Registry secret rotations: audit report</h1>",
        f'<p class="meta">{_when(document["since"])} to {_when(document["until"])} · {escape(scope)} · '
        f"generated {_when(document['generated_at'])}</p>",
        _cards(document),
        "<h2>Failures per day</h2>",
        failures_chart(document["failures_per_day"], days),
        "<h2>Rotations per secret</h2>",
        timeline_chart(document["rotations_per_day"], days),
        "<h2>Per target and secret</h2>",
        _pairs_table(document["pairs"]),
        "<h2>Manual actions</h2>",
        _manual_table(document["manual_actions"], document["manual_actions_total"]),
        "<h2>Chain and anchor</h2>",
        _chain(document["chain"], document["last_anchor"]),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rotator audit report {escape(document['since'][:10])} to {escape(document['until'][:10])}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _cards(document: dict[str, Any]) -> str:
    totals = document["totals"]
    cards = [(event, totals[event], "bad" if event in FAILURES and totals[event] else "") for event in OUTCOMES]
    chain = document["chain"]
    state = "not verified" if chain is None else ("intact" if chain["ok"] else "BROKEN")
    cards.append(("audit chain", state, "good" if chain and chain["ok"] else "bad"))
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card {kind}"><b>{escape(str(value))}</b>{escape(label)}</div>' for label, value, kind in cards
        )
        + "</div>"
    )


def _pairs_table(pairs: Sequence[dict[str, Any]]) -> str:
    head = ["target", "secret", *OUTCOMES, "last success", "longest outage", "verification"]
    rows = []
    for pair in pairs:
        outage = _duration(pair["longest_outage_seconds"]) + (" (ongoing)" if pair["outage_open"] else "")
        checks = ", ".join(f"{name} {count}" for name, count in pair["verification"].items())
        cells = [f"<td>{escape(pair['target'])}</td><td>{escape(pair['secret'])}</td>"]
        cells += [f'<td class="n">{pair[event]}</td>' for event in OUTCOMES]
        cells += [f"<td>{_when(pair['last_success'])}</td><td>{outage}</td><td>{escape(checks)}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(head, rows, empty="No rotations in this window.")


def _manual_table(actions: Sequence[dict[str, Any]], total: int) -> str:
    head = ["seq", "time", "target", "secret", "event", "trigger", "operator", "reason"]
    rows = [
        "<tr>" + "".join(f"<td>{escape(str(action[name] if action[name] is not None else ''))}</td>" for name in (
            "seq", "recorded_at", "target", "secret", "event", "trigger", "operator", "reason"
        )) + "</tr>"
        for action in actions
    ]  # fmt: skip
    more = f"<p>{total - len(actions)} more not listed.</p>" if total > len(actions) else ""
    return _table(head, rows, empty="No manual actions (pauses, pins, rollbacks, forced runs) in this window.") + more


def _chain(chain: dict[str, Any] | None, anchor: dict[str, Any] | None) -> str:
    if chain is None:
        verdict = "<p>The chain was not verified for this report (run <code>rotator audit verify</code>).</p>"
    elif chain["ok"]:
        head = chain["head"] or {"seq": 0, "row_hash": "(empty)"}
        anchors = f"; {chain['anchors_checked']} signed anchors hold" if chain["anchors_checked"] else ""
        verdict = (
            f'<p class="good">Intact: {chain["rows_checked"]} rows checked, head {head["seq"]} '
            f"<code>{escape(head['row_hash'])}</code>{anchors}.</p>"
        )
    else:
        problem = chain["problem"]
        verdict = (
            f'<p class="bad">BROKEN at seq {problem["seq"]}: {escape(problem["kind"])}: {escape(problem["detail"])}</p>'
        )
    if anchor is None:
        return verdict + "<p>No signed anchor was given (<code>--anchors FILE|vault:PATH</code>).</p>"
    signed = (
        f"seq {anchor['seq']} <code>{escape(anchor['row_hash'])}</code>, signed {escape(anchor['time'])} "
        f"by {escape(anchor['instance'])} with key <code>{escape(anchor['key'])}</code>"
    )
    return verdict + f"<p>Last signed anchor: {signed}.</p>"


def _when(moment: str | None) -> str:
    """``2026-11-27T12:00:01.000000Z`` shown as ``2026-11-27 12:00:01Z`` (the JSON keeps microseconds)."""
    return "—" if moment is None else escape(moment[:19].replace("T", " ") + "Z")


def _table(head: Sequence[str], rows: Sequence[str], *, empty: str) -> str:
    if not rows:
        return f"<p>{escape(empty)}</p>"
    header = "".join(f"<th>{escape(name)}</th>" for name in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m {whole % 60}s"
