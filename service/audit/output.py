"""Render audit rows: a terminal table, key-value text, JSON lines and CSV.

JSON lines and CSV carry every column (times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the
hashes, ``registries`` as an array in JSON and space-separated in CSV, absent values as
``null`` / an empty cell). The table keeps to one terminal line per event: short
fingerprints (the first 12 hex digits) and long cells cut with an ellipsis.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import Any, Protocol, TextIO

from service.audit.tables import audit_events
from service.model import format_time

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
    ("AI CORE CODE", "aicore_error_code", 16),
)
Row = Mapping[Any, Any]


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one encoder, not one per row


def as_json(row: Row) -> dict[str, Any]:
    """Every column, JSON-ready (a plain dict of every column, in order, is converted in place)."""
    document = row if type(row) is dict and len(row) == len(COLUMNS) else {name: row[name] for name in COLUMNS}
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


def table_layout(columns: Sequence[str] | None) -> tuple[tuple[str, str, int], ...]:
    """The table's (header, column, widest): the default set, or the chosen columns in their order."""
    if columns is None:
        return TABLE
    known = {column: (header, widest) for header, column, widest in TABLE}
    layout = []
    for name in columns:
        header, widest = known.get(name, (name.upper(), 24))
        layout.append((header, name, widest))
    return tuple(layout)


def write_table(rows: Iterable[Row], out: TextIO, columns: Sequence[str] | None = None) -> int:
    """One line per event under a header; returns the number of events."""
    rows = list(rows)
    layout = table_layout(columns)
    if columns is None and not any(row.get("operator") for row in rows):  # no manual action listed: no column for it
        layout = tuple(entry for entry in layout if entry[1] != "operator")
    cells = [[_cut(_cell(row, column), widest) for _, column, widest in layout] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, (header, _, _) in enumerate(layout)]
    for line in [[header for header, _, _ in layout], *cells]:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n")
    return len(cells)


def write_jsonl(rows: Iterable[Row], out: TextIO, columns: Sequence[str] | None = None) -> int:
    """One JSON object per line with every column (or the chosen ones); returns the number of events."""
    count, encode, write = 0, _ENCODER.encode, out.write
    for row in rows:
        document = as_json(row)
        if columns is not None:
            document = {name: document[name] for name in columns}
        write(encode(document) + "\n")
        count += 1
    return count


def write_csv(rows: Iterable[Row], out: TextIO, columns: Sequence[str] | None = None) -> int:
    """A header and one line per event with every column (or the chosen ones); returns the number of events."""
    names = COLUMNS if columns is None else tuple(columns)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    count = 0
    for row in rows:
        document = as_json(row)
        document["registries"] = " ".join(document["registries"])
        writer.writerow(["" if document[name] is None else document[name] for name in names])
        count += 1
    return count


def write_text(rows: Iterable[Row], out: TextIO, columns: Sequence[str] | None = None) -> int:
    """Each event as aligned ``column: value`` lines, events separated by a blank line."""
    names = COLUMNS if columns is None else tuple(columns)
    count = 0
    width = max(len(name) for name in names)
    for row in rows:
        document = as_json(row)
        document["registries"] = ", ".join(document["registries"])
        out.write("\n" if count else "")
        out.writelines(f"{name.ljust(width)}  {'' if document[name] is None else document[name]}\n" for name in names)
        count += 1
    return count


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """``--columns seq,event,secret``: known column names, in the order given."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or not names:
        shown = ", ".join(map(repr, unknown)) or "none given"
        raise ValueError(f"unknown column {shown} in --columns (any of {', '.join(COLUMNS)})")
    return names


class Writer(Protocol):
    def __call__(self, rows: Iterable[Row], out: TextIO, columns: Sequence[str] | None = None) -> int: ...


WRITERS: dict[str, Writer] = {
    "table": write_table,
    "jsonl": write_jsonl,
    "json": write_jsonl,
    "csv": write_csv,
    "text": write_text,
}
