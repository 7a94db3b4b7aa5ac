"""The SIEM feed: export's filters, resumable cursor and --follow; list's --columns and cut-off note; verify --json."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service import cli
from service.audit import commands
from service.audit.store import AuditStore
from service.model import AuditRecord, EventType
from tests.integration.audit.conftest import make_event


@pytest.fixture
def trail(store: AuditStore) -> list[AuditRecord]:
    """Five events: ghcr-pull on eu and us, then quay-pull on eu."""
    records = store.append([make_event(), make_event(event=EventType.APPLIED, intent_seq=1)])
    records += store.append([make_event(target="us"), make_event(target="us", event=EventType.FAILED, intent_seq=3)])
    records += store.append([make_event(secret="quay-pull")])
    return records


def _export(engine: Engine, **options: Any) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    chosen: dict[str, Any] = {"fmt": "jsonl", "since": None, "until": None}
    chosen.update(options)
    code = commands.audit_export(engine, out=out, err=err, **chosen)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_export_takes_lists_filters(engine: Engine, trail: list[AuditRecord]) -> None:
    """export --target/--event select the same rows as list, oldest first."""
    code, rows, _ = _export(engine, targets=["us"])
    assert code == 0
    assert [row["seq"] for row in rows] == [3, 4]
    _, rows, _ = _export(engine, events=["intent"], secrets=["ghcr-pull"])
    assert [row["seq"] for row in rows] == [1, 3]


def test_export_after_seq_resumes_and_reports_its_cursor(engine: Engine, trail: list[AuditRecord]) -> None:
    """--after-seq N writes only later rows; stderr names the last seq written, to resume from."""
    code, rows, err = _export(engine, after_seq=2)
    assert code == 0
    assert [row["seq"] for row in rows] == [3, 4, 5]
    assert err == "exported 3 rows, last seq 5\n"
    _, rows, err = _export(engine, after_seq=5)
    assert rows == []
    assert err == "exported 0 rows, last seq 5\n"


def test_export_after_seq_beyond_the_head_is_one_line(engine: Engine, trail: list[AuditRecord]) -> None:
    """A cursor beyond the chain head is a usage error on one line, never a traceback."""
    code, rows, err = _export(engine, after_seq=9)
    assert code == 2
    assert rows == []
    assert err == "error: --after-seq 9 is beyond the chain head (seq 5): no such row was written\n"


def test_follow_needs_json_lines(engine: Engine, trail: list[AuditRecord]) -> None:
    """--follow with CSV (whose header would repeat) is refused."""
    code, _, err = _export(engine, fmt="csv", follow=True)
    assert code == 2
    assert "--follow writes JSON lines only" in err


class _Lines(io.StringIO):
    """An output a test can wait on until it holds a number of lines."""

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.getvalue().splitlines()
            if len(lines) >= count:
                return [json.loads(line) for line in lines]
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.getvalue().splitlines())} of {count} lines arrived")


def test_follow_tails_new_rows_until_stopped(engine: Engine, store: AuditStore, trail: list[AuditRecord]) -> None:
    """--follow writes the rows there are, then each row appended later, and stops when told."""
    out, err, stop = _Lines(), io.StringIO(), threading.Event()
    codes: list[int] = []
    options: dict[str, Any] = {"fmt": "jsonl", "since": None, "until": None, "after_seq": 3, "follow": True}
    worker = threading.Thread(
        target=lambda: codes.append(
            commands.audit_export(engine, **options, poll_seconds=0.05, stop=stop, out=out, err=err)
        )
    )
    worker.start()
    assert [row["seq"] for row in out.wait_for(2)] == [4, 5]
    store.append([make_event(secret="late-pull")])
    assert [row["secret"] for row in out.wait_for(3)][-1] == "late-pull"
    stop.set()
    worker.join(timeout=10)
    assert codes == [0]
    assert err.getvalue() == "exported 3 rows, last seq 6\n"


def test_follow_stops_cleanly_on_sigterm(engine: Engine, store: AuditStore, trail: list[AuditRecord]) -> None:
    """In the main thread, SIGTERM ends --follow after the current batch: exit 0 and the cursor line."""
    out, err = _Lines(), io.StringIO()

    def feed_then_terminate() -> None:
        out.wait_for(5)
        store.append([make_event(secret="late-pull")])
        out.wait_for(6)
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=feed_then_terminate)
    helper.start()
    before = signal.getsignal(signal.SIGTERM)
    code = commands.audit_export(
        engine, fmt="jsonl", since=None, until=None, follow=True, poll_seconds=0.05, out=out, err=err
    )
    helper.join(timeout=10)
    assert code == 0
    assert err.getvalue() == "exported 6 rows, last seq 6\n"
    assert signal.getsignal(signal.SIGTERM) is before


def _list(engine: Engine, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    chosen: dict[str, Any] = {
        "secrets": [], "targets": [], "events": [], "actors": [], "runs": [],
        "since": None, "until": None, "limit": 50, "fmt": "table",
    }  # fmt: skip
    chosen.update(options)
    code = commands.audit_list(engine, out=out, err=err, **chosen)
    return code, out.getvalue(), err.getvalue()


def test_list_says_when_the_limit_cut_it_off(engine: Engine, trail: list[AuditRecord]) -> None:
    """A table cut by --limit ends with a note; JSON lines stay clean and the note goes to stderr."""
    code, text, _ = _list(engine, limit=2)
    assert code == 0
    assert text.splitlines()[-1] == "… more rows; raise --limit (now 2) or use export"
    assert len(text.splitlines()) == 4
    _, text, err = _list(engine, limit=2, fmt="jsonl")
    assert [json.loads(line)["seq"] for line in text.splitlines()] == [5, 4]
    assert "more rows" in err
    _, text, err = _list(engine, limit=5)
    assert "more rows" not in text + err


def test_list_columns_choose_and_order(engine: Engine, trail: list[AuditRecord]) -> None:
    """--columns picks columns in the order given, for the table and for JSON lines."""
    _, text, _ = _list(engine, columns="seq,event,row_hash", limit=1)
    header, line, note = text.splitlines()
    assert note.startswith("… more rows")
    assert header.split() == ["SEQ", "EVENT", "ROW_HASH"]
    assert line.split()[:2] == ["5", "intent"]
    _, text, _ = _list(engine, columns="event,seq", fmt="jsonl", limit=1)
    assert text == '{"event":"intent","seq":5}\n'


def test_list_unknown_column_exits_2(engine: Engine, trail: list[AuditRecord]) -> None:
    """An unknown column name is named on one line, exit 2."""
    code, _, err = _list(engine, columns="seq,colour")
    assert code == 2
    assert err.startswith("error: unknown column 'colour' in --columns")


def test_verify_json(engine: Engine, trail: list[AuditRecord]) -> None:
    """verify --json prints one object: ok, rows checked, head; on tampering the problem, exit 1."""
    out = io.StringIO()
    assert commands.audit_verify(engine, anchor=None, as_json=True, out=out) == 0
    document = json.loads(out.getvalue())
    assert document["ok"] is True
    assert document["rows_checked"] == 5
    assert document["head"] == {"seq": 5, "row_hash": trail[-1].row_hash}
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET http_status = 500 WHERE seq = 2"))
        conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
    out = io.StringIO()
    assert commands.audit_verify(engine, anchor=None, as_json=True, out=out) == 1
    assert json.loads(out.getvalue())["problem"]["seq"] == 2
    assert json.loads(out.getvalue())["problem"]["kind"] == "changed"


class _ClosingPipe(io.StringIO):
    """A reader that goes away after two lines."""

    def write(self, text: str) -> int:
        if self.getvalue().count("\n") >= 2:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_feed_cut_short_still_reports_its_cursor(engine: Engine, trail: list[AuditRecord]) -> None:
    """When the output breaks mid-feed the cursor line still names the last row written, to resume from."""
    err = io.StringIO()
    with pytest.raises(BrokenPipeError):
        commands.audit_export(engine, fmt="jsonl", since=None, until=None, out=_ClosingPipe(), err=err)
    assert err.getvalue() == "exported 2 rows, last seq 2\n"


def test_cli_export_to_an_unwritable_path_is_one_line(
    engine: Engine, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rotator audit export -o DIR/missing/FILE names the path on one line and exits 2."""
    config = tmp_path / "rotator.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n')
    target = tmp_path / "missing" / "feed.jsonl"
    assert cli.main(["audit", "export", "-c", str(config), "-o", str(target)]) == 2
    assert capsys.readouterr().err == f"error: cannot write the export to {target}: No such file or directory\n"
