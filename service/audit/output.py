"""Render audit rows: a terminal table, key-value text, JSON lines and CSV.

JSON lines and CSV carry every column (times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the
hashes, ``registries`` as an array in JSON and space-separated in CSV, absent values as
``null`` / an empty cell). The table keeps to one terminal line per event: short
fingerprints (the first 12 hex digits) and long cells cut with an ellipsis.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from typing import Any, TextIO

from service.audit.chain import format_time
from service.audit.tables import audit_events

COLUMNS: tuple[str, ...] = tuple(column.name for column in audit_events.columns)
# (header, column, widest) for the table; widths shrink to the content.
TABLE = (
    ("SEQ", "seq", 12),
    ("TIME (UTC)", "recorded_at", 20),
    ("EVENT", "event", 11),
    ("TARGET", "target", 14),
    ("SECRET", "secret", 24),
    ("TRIGGER", "trigger", 8),
    ("ACTOR", "actor", 18),
    ("OPERATOR", "operator", 18),  # manual actions: who ran them
    ("HTTP", "http_status", 4),
    ("FINGERPRINT", "fingerprint", 12),
    ("ERROR", "error_code", 18),
)
Row = Mapping[Any, Any]


def as_json(row: Row) -> dict[str, Any]:
    """Every column, JSON-ready."""
    document = {name: row[name] for name in COLUMNS}
    document["recorded_at"] = format_time(row["recorded_at"])
    document["registries"] = list(row["registries"])
    return document


def short_digest(value: str | None) -> str:
    """The first 12 hex digits of ``hmac-sha256:<key id>:<hex>``."""
    return value.rsplit(":", 1)[-1][:12] if value else ""


def _cell(row: Row, column: str) -> str:
    value = row[column]
    if column == "recorded_at":
        return str(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"))
    if column == "fingerprint":
        return short_digest(value)
    return "" if value is None else str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def write_table(rows: Iterable[Row], out: TextIO) -> int:
    """One line per event under a header; returns the number of events."""
    cells = [[_cut(_cell(row, column), widest) for _, column, widest in TABLE] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, (header, _, _) in enumerate(TABLE)]
    for line in [[header for header, _, _ in TABLE], *cells]:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n")
    return len(cells)


def write_jsonl(rows: Iterable[Row], out: TextIO) -> int:
    """One JSON object per line with every column; returns the number of events."""
    count = 0
    for row in rows:
        out.write(json.dumps(as_json(row), ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def write_csv(rows: Iterable[Row], out: TextIO) -> int:
    """A header and one line per event with every column; returns the number of events."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        document = as_json(row)
        document["registries"] = " ".join(document["registries"])
        writer.writerow(["" if document[name] is None else document[name] for name in COLUMNS])
        count += 1
    return count


def write_text(rows: Iterable[Row], out: TextIO) -> int:
    """Each event as aligned ``column: value`` lines, events separated by a blank line."""
    count = 0
    width = max(len(name) for name in COLUMNS)
    for row in rows:
        document = as_json(row)
        document["registries"] = ", ".join(document["registries"])
        out.write("\n" if count else "")
        out.writelines(f"{name.ljust(width)}  {'' if document[name] is None else document[name]}\n" for name in COLUMNS)
        count += 1
    return count


WRITERS: dict[str, Callable[[Iterable[Row], TextIO], int]] = {
    "table": write_table,
    "jsonl": write_jsonl,
    "json": write_jsonl,
    "csv": write_csv,
    "text": write_text,
}
