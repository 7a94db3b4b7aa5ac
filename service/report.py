"""What `rotator once` prints: one line (or JSON object) per rotation, then a summary."""

from __future__ import annotations

import json

from service.model import Outcome, fingerprint_text, short_fingerprint
from service.rotation import RotationResult, SweepReport


def result_line(result: RotationResult) -> str:
    """``applied  eu/acme-registry  k1:3f9c0a1b2c3d  v7  202  req=...  134ms``, plus the problem if any."""
    parts = [f"{result.outcome:<11}", str(result.key)]
    if result.fingerprint:
        parts.append(short_fingerprint(result.fingerprint) or "")
    if result.source_version is not None:
        parts.append(f"v{result.source_version}")
    if result.would_write is not None:
        parts.append("would write" if result.would_write else "up to date")
    if result.http_status is not None:
        parts.append(str(result.http_status))
    if result.request_id:
        parts.append(f"req={result.request_id}")
    parts.append(f"{result.duration_ms}ms")
    if result.error_code:
        parts.append(f"[{result.error_code}] {result.message or ''}".rstrip())
    elif result.outcome in (Outcome.PAUSED, Outcome.DEFERRED) and result.message:
        parts.append(result.message)
    return "  ".join(parts)


def render_results(report: SweepReport, *, as_json: bool) -> str:
    if as_json:
        return "\n".join(json.dumps(_as_dict(result), default=str) for result in report.results)
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.counts().items()))
    lines = [result_line(result) for result in report.results]
    lines.append(
        f"run {report.run_id}: {counts or 'nothing to do'} in {report.duration_ms}ms"
        + (f"; audit head {report.head}" if report.head else "")
    )
    return "\n".join(lines)


def _as_dict(result: RotationResult) -> dict[str, object]:
    fields = {name: getattr(result, name) for name in result.__dataclass_fields__}
    key = fields.pop("key")
    fields["fingerprint"] = fingerprint_text(result.fingerprint)  # the full text, as the audit trail holds it
    fields["previous_fingerprint"] = fingerprint_text(result.previous_fingerprint)
    return {"target": key.target, "secret": key.secret, **fields}
