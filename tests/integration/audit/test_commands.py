"""The `rotator audit` and `rotator db` handlers against a real trail."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit import commands, schema
from service.audit.chain import GENESIS
from service.audit.output import COLUMNS
from service.audit.store import AuditStore
from service.model import AuditRecord, EventType, Trigger
from tests.integration.audit.conftest import make_event

LONG_SECRET = "a-very-long-secret-name-that-keeps-going-and-going-until-sixty3"


@pytest.fixture
def trail(store: AuditStore) -> list[AuditRecord]:
    """Six events over two runs, two targets, two secrets and two actors."""
    intent = make_event(run_id="run-a")
    records = store.append([intent])
    records += store.append([make_event(run_id="run-a", event=EventType.APPLIED, intent_seq=1, http_status=202)])
    records += store.append([make_event(run_id="run-a", target="us")])
    failed = make_event(
        run_id="run-a",
        target="us",
        event=EventType.FAILED,
        intent_seq=3,
        http_status=403,
        error_code="aicore_forbidden",
        aicore_error_code="ForbiddenAccess",
    )
    records += store.append([failed])
    manual = {"run_id": "run-b", "secret": LONG_SECRET, "actor": "rotator-1/0.1.0", "trigger": Trigger.MANUAL}
    records += store.append([make_event(**manual)])
    records += store.append([make_event(**manual, event=EventType.APPLIED, intent_seq=5, registries=("a.io", "b.io"))])
    return records


def _list(engine: Engine, **options: Any) -> tuple[int, str, list[dict[str, Any]]]:
    out = io.StringIO()
    chosen: dict[str, Any] = {
        "secrets": [], "targets": [], "events": [], "actors": [], "runs": [],
        "since": None, "until": None, "limit": 50, "fmt": "jsonl",
    }  # fmt: skip
    chosen.update(options)
    code = commands.audit_list(engine, out=out, **chosen)
    text = out.getvalue()
    return code, text, [json.loads(line) for line in text.splitlines()] if chosen["fmt"] == "jsonl" else []


def _seqs(engine: Engine, **options: Any) -> list[int]:
    code, _, rows = _list(engine, **options)
    assert code == 0
    return [row["seq"] for row in rows]


def test_list_is_newest_first_and_limited(engine: Engine, trail: list[AuditRecord]) -> None:
    """Without filters: newest first; --limit cuts the list."""
    assert _seqs(engine) == [6, 5, 4, 3, 2, 1]
    assert _seqs(engine, limit=2) == [6, 5]


@pytest.mark.parametrize(
    ("option", "values", "expected"),
    [
        ("secrets", ["ghcr-pull"], [4, 3, 2, 1]),
        ("targets", ["us"], [4, 3]),
        ("events", ["failed"], [4]),
        ("events", ["intent", "failed"], [5, 4, 3, 1]),
        ("actors", ["rotator-1/0.1.0"], [6, 5]),
        ("runs", ["run-b"], [6, 5]),
    ],
)
def test_list_filters(
    engine: Engine, trail: list[AuditRecord], option: str, values: list[str], expected: list[int]
) -> None:
    """Each filter selects exactly the matching events."""
    assert _seqs(engine, **{option: values}) == expected


def test_list_filters_combine(engine: Engine, trail: list[AuditRecord]) -> None:
    """Filters on different columns all apply."""
    assert _seqs(engine, secrets=["ghcr-pull"], targets=["us"], events=["intent"]) == [3]


def test_list_time_range(engine: Engine, trail: list[AuditRecord]) -> None:
    """--since and --until take ISO 8601 or a duration ago; since is inclusive, until exclusive."""
    at = trail[0].recorded_at
    assert _seqs(engine, since="1h") == [6, 5, 4, 3, 2, 1]
    assert _seqs(engine, until="1h") == []
    assert _seqs(engine, since=at.isoformat(), until=trail[1].recorded_at.isoformat()) == [1]
    assert _seqs(engine, since="2099-01-01") == []
    assert _seqs(engine, until="2099-01-01T00:00:00Z", secrets=["ghcr-pull"], limit=1) == [4]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"since": "yesterday"}, "not a time: 'yesterday'"),
        ({"until": "24x"}, "not a time"),
        ({"events": ["deleted"]}, "unknown event 'deleted'"),
        ({"limit": 0}, "--limit must be at least 1"),
        ({"fmt": "xml"}, "unknown format 'xml'"),
    ],
)
def test_list_bad_values_exit_2(
    engine: Engine, capsys: pytest.CaptureFixture[str], options: dict[str, Any], message: str
) -> None:
    """A bad option value prints a clear message and exits 2 without querying."""
    code, text, _ = _list(engine, **options)
    assert (code, text) == (2, "")
    assert message in capsys.readouterr().err


def test_list_jsonl_carries_every_column(engine: Engine, trail: list[AuditRecord]) -> None:
    """JSON lines hold every column, full fingerprints and hashes; each line re-hashes to its row_hash."""
    _, _, rows = _list(engine)
    assert all(list(row) == list(COLUMNS) for row in rows)
    oldest = rows[-1]
    assert oldest["fingerprint"] == str(trail[0].event.fingerprint) == "hmac-sha256:k1:" + "ab" * 32
    assert oldest["prev_hash"] == GENESIS
    assert oldest["recorded_at"].endswith("Z")
    assert rows[0]["registries"] == ["a.io", "b.io"]
    for row in rows:  # a third party can recompute each hash from the export alone (docs/audit.md)
        document = {name: value for name, value in row.items() if name not in ("prev_hash", "row_hash")}
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert hashlib.sha256(row["prev_hash"].encode() + canonical).hexdigest() == row["row_hash"]


def test_list_csv_carries_every_column(engine: Engine, trail: list[AuditRecord]) -> None:
    """CSV has a header of every column; registries are space-separated, absent values empty."""
    code, text, _ = _list(engine, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert code == 0
    assert tuple(rows[0]) == COLUMNS
    assert [row["seq"] for row in rows] == ["6", "5", "4", "3", "2", "1"]
    assert rows[0]["registries"] == "a.io b.io"
    assert rows[0]["error_code"] == ""
    assert rows[2]["error_code"] == "aicore_forbidden"


def test_list_table_fits_a_terminal(engine: Engine, trail: list[AuditRecord]) -> None:
    """The table has a header and one line per event, short fingerprints and cut long names."""
    code, text, _ = _list(engine, fmt="table")
    lines = text.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    assert len(lines) == 7
    assert max(map(len, lines)) <= 150
    digest = trail[0].event.fingerprint.digest  # type: ignore[union-attr]
    assert digest[:12] in lines[-1]
    assert digest not in text
    assert LONG_SECRET not in text
    assert LONG_SECRET[:20] in lines[1]
    assert "AI CORE CODE" in lines[0]
    assert "ForbiddenAccess" in lines[3]


def test_show_one_event_and_a_run(engine: Engine, trail: list[AuditRecord]) -> None:
    """show SEQ prints that event with every column; show RUN prints the run's events oldest first."""
    out = io.StringIO()
    assert commands.audit_show(engine, ident="4", fmt="text", out=out) == 0
    text = out.getvalue()
    assert "aicore_forbidden" in text
    assert "aicore_error_code" in text
    assert "ForbiddenAccess" in text
    assert trail[3].row_hash in text
    assert text.count("\nseq") == 0
    out = io.StringIO()
    assert commands.audit_show(engine, ident="run-b", fmt="json", out=out) == 0
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [5, 6]


def test_show_unknown_exits_1(engine: Engine, trail: list[AuditRecord], capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown seq or run id prints what was not found and exits 1."""
    assert commands.audit_show(engine, ident="99", fmt="text", out=io.StringIO()) == 1
    assert "sequence number '99'" in capsys.readouterr().err
    assert commands.audit_show(engine, ident="run-x", fmt="text", out=io.StringIO()) == 1
    assert "run id 'run-x'" in capsys.readouterr().err


class _WatchingOutput(io.StringIO):
    """An output that, on its first write, looks at what the exporting session is doing."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.cursor_statements: list[str] | None = None

    def write(self, text: str) -> int:
        if self.cursor_statements is None:
            with self.engine.connect() as conn:
                self.cursor_statements = list(
                    conn.execute(
                        sa.text(
                            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid() AND (query LIKE 'DECLARE%' OR query LIKE 'FETCH%')"
                        )
                    ).scalars()
                )
        return super().write(text)


def test_export_streams_through_a_server_side_cursor(engine: Engine, trail: list[AuditRecord]) -> None:
    """export writes while the rows still come from a server-side cursor (DECLARE / FETCH), oldest first."""
    out = _WatchingOutput(engine)
    assert commands.audit_export(engine, fmt="jsonl", since=None, until=None, out=out) == 0
    assert out.cursor_statements, "the export did not use a server-side cursor"
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_export_range_as_csv(engine: Engine, trail: list[AuditRecord]) -> None:
    """export --since/--until selects a time range; CSV output has a header and the rows."""
    out = io.StringIO()
    since, until = trail[2].recorded_at.isoformat(), trail[4].recorded_at.isoformat()
    assert commands.audit_export(engine, fmt="csv", since=since, until=until, out=out) == 0
    assert [row["seq"] for row in csv.DictReader(io.StringIO(out.getvalue()))] == ["3", "4"]


def test_export_bad_value_exits_2(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """export refuses an unknown format or time with exit code 2."""
    assert commands.audit_export(engine, fmt="table", since=None, until=None, out=io.StringIO()) == 2
    assert commands.audit_export(engine, fmt="csv", since="soon", until=None, out=io.StringIO()) == 2
    assert "not a time" in capsys.readouterr().err


def test_verify_reports_rows_and_head(engine: Engine, trail: list[AuditRecord]) -> None:
    """verify prints the rows checked and the head, and confirms an anchor."""
    out = io.StringIO()
    anchor = f"{trail[2].seq}:{trail[2].row_hash}"
    assert commands.audit_verify(engine, anchor=anchor, out=out) == 0
    assert out.getvalue() == f"ok: 6 rows checked; head 6:{trail[-1].row_hash}; anchor {anchor} confirmed\n"


def test_verify_names_the_first_bad_row(engine: Engine, trail: list[AuditRecord]) -> None:
    """On a tampered trail verify exits 1 and names the row and what is wrong."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET http_status = 202 WHERE seq = 4"))
        conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
    out = io.StringIO()
    assert commands.audit_verify(engine, anchor=None, out=out) == 1
    assert "first bad row: seq 4: changed" in out.getvalue()
    assert out.getvalue().startswith("FAILED: 3 rows checked")


def test_verify_bad_anchor_exits_2(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed anchor is a usage error."""
    assert commands.audit_verify(engine, anchor="12:abc", out=io.StringIO()) == 2
    assert "not an anchor" in capsys.readouterr().err


def test_db_commands(empty_engine: Engine) -> None:
    """db current says what to run on an empty database; db upgrade migrates once; then current is head."""
    out = io.StringIO()
    assert commands.db_current(empty_engine, out) == 1
    assert "run `rotator db upgrade`" in out.getvalue()
    out = io.StringIO()
    assert commands.db_upgrade(empty_engine, out) == 0
    assert commands.db_upgrade(empty_engine, out) == 0
    assert out.getvalue().splitlines() == [
        f"schema upgraded from empty to {schema.head()}",
        f"schema already at head {schema.head()}",
    ]
    out = io.StringIO()
    assert commands.db_current(empty_engine, out) == 0
    assert out.getvalue() == f"revision {schema.head()} (head)\n"
