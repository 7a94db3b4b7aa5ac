"""`rotator audit report`: the JSON checked against the audit rows, the HTML rendered in headless Chromium."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service import cli
from service.audit import commands
from service.audit.chain import GENESIS, event_row, row_hash
from service.audit.tables import audit_chain_head, audit_events
from service.model import EventType, Trigger
from tests.integration.audit.conftest import make_event

DAY0 = (datetime.now(UTC) - timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0)
OUTCOMES = ("applied", "failed", "rejected", "unknown", "interrupted")


@dataclass(frozen=True)
class Row:
    """One row of the scenario: when, and the event's fields."""

    at: datetime
    fields: dict[str, Any]


def at(day: float) -> datetime:
    return DAY0 + timedelta(days=day)


def rotation(day: float, target: str, secret: str, outcome: str, **extra: Any) -> list[Row]:
    """An intent and its outcome one second later."""
    common = {"target": target, "secret": secret, **extra}
    outcome_fields = {**common, "event": EventType(outcome)}
    if outcome == "failed":
        outcome_fields.update(error_code="aicore_forbidden", http_status=403)
    return [Row(at(day), {**common, "event": EventType.INTENT}), Row(at(day) + timedelta(seconds=1), outcome_fields)]


SCENARIO: list[Row] = [
    *rotation(-40, "eu", "ghcr-pull", "applied"),  # before the window
    *rotation(0, "eu", "ghcr-pull", "applied", verification="ok"),
    *rotation(2, "eu", "ghcr-pull", "failed"),
    *rotation(3, "eu", "ghcr-pull", "failed"),
    Row(at(3.5), {"target": "eu", "secret": "ghcr-pull", "event": EventType.PAUSED, "trigger": Trigger.MANUAL,
                  "operator": "alice", "reason": "vendor outage"}),
    Row(at(3.9), {"target": "eu", "secret": "ghcr-pull", "event": EventType.RESUMED, "trigger": Trigger.MANUAL,
                  "operator": "alice", "reason": "vendor is back"}),
    *rotation(4, "eu", "ghcr-pull", "applied", verification="ok"),
    *rotation(1, "us", "ghcr-pull", "rejected", verification="auth_failed"),
    *rotation(1.05, "us", "ghcr-pull", "applied", verification="ok"),
    *rotation(5, "eu", "quay-pull", "unknown"),
    *rotation(6, "eu", "ghcr-pull", "applied", trigger=Trigger.ROLLBACK, operator="bob", reason="token v7 is bad"),
    *rotation(6.5, "eu", "quay-pull", "applied", trigger=Trigger.MANUAL),  # manual, but no operator: not listed
]  # fmt: skip


def load(engine: Engine, rows: Sequence[Row]) -> None:
    """Append the rows, chained and at their own times (oldest first), as the appender would have."""
    ordered = sorted(rows, key=lambda row: row.at)
    previous = GENESIS
    with engine.begin() as conn:
        for seq, row in enumerate(ordered, start=1):
            values = event_row(make_event(**row.fields), seq=seq, recorded_at=row.at)
            values.update(prev_hash=previous, row_hash=row_hash(previous, values))
            previous = values["row_hash"]
            conn.execute(sa.insert(audit_events).values(values))
        conn.execute(sa.update(audit_chain_head).values(seq=len(ordered), row_hash=previous))


@pytest.fixture
def scenario(engine: Engine) -> list[dict[str, Any]]:
    """The scenario in the database; returns its rows as stored, oldest first."""
    load(engine, SCENARIO)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(audit_events).order_by("seq")).mappings()]


def report(engine: Engine, tmp_path: Path, fmt: str, **options: Any) -> tuple[int, Path, str]:
    output = tmp_path / f"report.{fmt}"
    out = io.StringIO()
    chosen: dict[str, Any] = {"since": "30d", "until": None, "targets": [], "fmt": fmt}
    chosen.update(options)
    code = commands.audit_report(engine, output=output, out=out, **chosen)
    return code, output, out.getvalue()


def expected_pairs(rows: list[dict[str, Any]], since: datetime) -> dict[tuple[str, str], dict[str, Any]]:
    """The per-pair numbers computed straight from the rows, independently of the SQL."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row["recorded_at"] < since or row["event"] not in OUTCOMES:
            continue
        pair = pairs.setdefault((row["target"], row["secret"]), {**dict.fromkeys(OUTCOMES, 0), "outcomes": []})
        pair[row["event"]] += 1
        pair["outcomes"].append(row)
    for pair in pairs.values():
        applied = [r["recorded_at"] for r in pair["outcomes"] if r["event"] == "applied"]
        pair["last_success"] = max(applied) if applied else None
        pair["longest"], began = None, None
        for r in pair["outcomes"]:
            if r["event"] != "applied" and began is None:
                began = r["recorded_at"]
            elif r["event"] == "applied" and began is not None:
                span = r["recorded_at"] - began
                pair["longest"], began = max(span, pair["longest"] or span), None
        pair["open_since"] = began
    return pairs


def test_json_report_matches_the_rows(engine: Engine, scenario: list[dict[str, Any]], tmp_path: Path) -> None:
    """Counts, last success, longest outage, verification and manual actions agree with the audit rows."""
    code, output, said = report(engine, tmp_path, "json")
    document = json.loads(output.read_text())
    assert code == 0
    assert said == f"wrote {output}: 3 (target, secret) pairs, chain intact\n"
    until = datetime.fromisoformat(document["until"].replace("Z", "+00:00"))
    expected = expected_pairs(scenario, since=until - timedelta(days=30))
    got = {(p["target"], p["secret"]): p for p in document["pairs"]}
    assert set(got) == set(expected)
    for key, want in expected.items():
        pair = got[key]
        assert [pair[event] for event in OUTCOMES] == [want[event] for event in OUTCOMES], key
        assert pair["last_success"] == (want["last_success"] and want["last_success"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        longest = want["longest"]
        if want["open_since"] is not None:
            longest = max(longest or timedelta(0), until - want["open_since"])
        assert pair["longest_outage_seconds"] == pytest.approx(longest.total_seconds() if longest else None)
        assert pair["outage_open"] is (want["open_since"] is not None)
    assert got[("eu", "ghcr-pull")]["longest_outage_seconds"] == pytest.approx(2 * 86400)
    assert got[("us", "ghcr-pull")]["verification"] == {"auth_failed": 1, "ok": 1}
    assert document["totals"] == {"applied": 5, "failed": 2, "rejected": 1, "unknown": 1, "interrupted": 0}
    manual = [(a["event"], a["trigger"], a["operator"], a["reason"]) for a in document["manual_actions"]]
    assert manual == [
        ("paused", "manual", "alice", "vendor outage"),
        ("resumed", "manual", "alice", "vendor is back"),
        ("intent", "rollback", "bob", "token v7 is bad"),
        ("applied", "rollback", "bob", "token v7 is bad"),
    ]
    assert [day["count"] for day in document["failures_per_day"]] == [1, 1, 1, 1]
    assert document["chain"]["ok"] is True
    assert document["chain"]["rows_checked"] == len(scenario)


def test_report_for_one_target(engine: Engine, scenario: list[dict[str, Any]], tmp_path: Path) -> None:
    """--target keeps that target's pairs only."""
    _, output, _ = report(engine, tmp_path, "json", targets=["us"])
    document = json.loads(output.read_text())
    assert [(p["target"], p["secret"]) for p in document["pairs"]] == [("us", "ghcr-pull")]
    assert document["manual_actions"] == []


def test_a_broken_chain_is_in_the_report_and_exits_1(
    engine: Engine, scenario: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A tampered row: the report is still written, says BROKEN, and the command exits 1."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET operator = 'mallory' WHERE operator = 'alice'"))
        conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
    code, output, said = report(engine, tmp_path, "html")
    assert code == 1
    assert said.endswith("chain BROKEN\n")
    assert "BROKEN at seq" in output.read_text()


def test_report_bad_window_exits_2(engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A window that ends before it starts, or an unknown format, is one line, exit 2."""
    assert report(engine, tmp_path, "json", since="1d", until="2d")[0] == 2
    assert report(engine, tmp_path, "pdf")[0] == 2
    err = capsys.readouterr().err
    assert "is not before --until" in err
    assert "unknown format 'pdf'" in err


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("headless Chromium is absent: install the Debian package `chromium` (.ci/run does)")
    return found


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
    ]  # fmt: skip
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def test_html_report_renders_in_headless_chromium(
    engine: Engine, scenario: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Chromium draws the self-contained page: its text, both SVG charts with their marks, and a screenshot."""
    chromium = _chromium()
    code, output, _ = report(engine, tmp_path, "html")
    html = output.read_text()
    assert code == 0
    assert "<script" not in html
    assert "src=" not in html
    assert "url(" not in html
    assert [part for part in html.split('"') if part.startswith("http")] == ["http://www.w3.org/2000/svg"] * 2
    assert "@media print" in html
    dom = _headless(chromium, tmp_path / "profile-dom", "--dump-dom", output.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in ("Registry secret rotations: audit report", "Per target and secret", "ghcr-pull", "quay-pull",
                 "alice", "vendor outage", "token v7 is bad", "Intact:", "2d 0h"):  # fmt: skip
        assert text in dom.stdout, text
    assert dom.stdout.count("<svg") == 2
    assert dom.stdout.count('<rect class="fail"') >= 4 + 3  # 4 failure days in the bars; 3 red marks in the timeline
    assert dom.stdout.count('<rect class="ok"') >= 3
    screenshot = tmp_path / "report.png"
    shot = _headless(
        chromium, tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=1280,1600", output.as_uri()
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000
    pdf = tmp_path / "report.pdf"
    printed = _headless(
        chromium, tmp_path / "profile-pdf", f"--print-to-pdf={pdf}", "--no-pdf-header-footer", output.as_uri()
    )
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF")
    print(f"report screenshot: {screenshot}; printed: {pdf}")


def test_cli_report_writes_the_file(
    engine: Engine, database_url: str, scenario: list[dict[str, Any]], tmp_path: Path
) -> None:
    """rotator audit report --since 30d --format json -o FILE writes the report and exits 0."""
    config = tmp_path / "rotator.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n')
    output = tmp_path / "cli.json"
    argv = ["audit", "report", "-c", str(config), "--since", "30d", "--format", "json", "-o", str(output)]
    assert cli.main(argv) == 0
    assert len(json.loads(output.read_text())["pairs"]) == 3


def test_report_to_a_missing_directory_is_one_line(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output path that cannot be written is named on one line, exit 2, no traceback."""
    out = io.StringIO()
    output = tmp_path / "missing" / "report.html"
    code = commands.audit_report(
        engine, since="30d", until=None, targets=[], fmt="html", output=output, out=out, verify=False
    )
    assert code == 2
    assert capsys.readouterr().err == f"error: cannot write the report to {output}: No such file or directory\n"
