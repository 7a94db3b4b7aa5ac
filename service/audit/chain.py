"""The hash chain (pure): canonical bytes of a row, its hash, and numbering a batch.

``row_hash = sha256(prev_hash as ASCII hex || canonical_bytes(row))``, where the canonical
bytes are the UTF-8 JSON object of every column in ``HASHED_COLUMNS`` (all but the two
hashes), keys sorted, no whitespace, non-ASCII unescaped, absent values ``null``, times as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC, registries as an array. This equals RFC 8785
(JCS) for the value types the table holds. ``docs/audit.md`` is the specification.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from service.audit.tables import CURRENT_FORMAT, HASHED_COLUMNS, HASHED_COLUMNS_V1
from service.errors import AuditError
from service.model import (
    AuditEvent,
    AuditRecord,
    ChainHead,
    EventType,
    Fingerprint,
    Trigger,
    fingerprint_text,
    format_time,
)

GENESIS = "0" * 64
# A row by column name: a dict, or SQLAlchemy's RowMapping (whose key type is wider than str).
RowLike = Mapping[Any, Any]


# One encoder, reused: no whitespace, UTF-8 text as is, no NaN. Keys are inserted in sorted
# order (equivalent to sort_keys=True, which costs a sort per row).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_SORTED_COLUMNS = {1: tuple(sorted(HASHED_COLUMNS_V1)), 2: tuple(sorted(HASHED_COLUMNS))}


def canonical_bytes(row: RowLike) -> bytes:
    """The bytes the row hash covers: sorted compact JSON of its format's hashed columns, UTF-8."""
    columns = _SORTED_COLUMNS.get(row.get("format") or 1)
    if columns is None:
        raise ValueError(f"unknown canonical format {row.get('format')!r}")
    document = {name: row[name] for name in columns}
    document["recorded_at"] = format_time(row["recorded_at"])
    document["registries"] = [str(host) for host in row["registries"]]
    return _ENCODER.encode(document).encode("utf-8")


def row_hash(prev_hash: str, row: RowLike) -> str:
    """``sha256(prev_hash_hex_ascii || canonical_bytes(row))`` as lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_bytes(row)).hexdigest()


_EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(AuditEvent))


def event_row(event: AuditEvent, *, seq: int, recorded_at: datetime) -> dict[str, Any]:
    """The hashed columns of one event at its place in the chain."""
    row: dict[str, Any] = {name: getattr(event, name) for name in _EVENT_FIELDS}
    row.update(
        seq=seq,
        recorded_at=recorded_at,
        event=str(event.event),
        trigger=str(event.trigger),
        registries=list(event.registries),
        format=CURRENT_FORMAT,
        fingerprint=fingerprint_text(event.fingerprint),
        previous_fingerprint=fingerprint_text(event.previous_fingerprint),
    )
    return row


def record_row(record: AuditRecord) -> dict[str, Any]:
    """Every column of a record, as stored (rows read back keep the format they were written in)."""
    row = event_row(record.event, seq=record.seq, recorded_at=record.recorded_at)
    row["format"] = record.format
    return {**row, "prev_hash": record.prev_hash, "row_hash": record.row_hash}


def chain(events: Sequence[AuditEvent], *, head: ChainHead, recorded_at: datetime) -> list[AuditRecord]:
    """Number and hash ``events`` after ``head``, all at ``recorded_at``."""
    return [record for record, _ in chained_rows(events, head=head, recorded_at=recorded_at)]


def chained_rows(
    events: Sequence[AuditEvent], *, head: ChainHead, recorded_at: datetime
) -> list[tuple[AuditRecord, dict[str, Any]]]:
    """``chain``, each record with its row as stored (``record_row``), built once for the hash and the insert."""
    out: list[tuple[AuditRecord, dict[str, Any]]] = []
    seq, prev = head.seq, head.row_hash
    for event in events:
        seq += 1
        row = event_row(event, seq=seq, recorded_at=recorded_at)
        digest = row_hash(prev, row)
        record = AuditRecord(
            seq=seq, recorded_at=recorded_at, event=event, prev_hash=prev, row_hash=digest, format=CURRENT_FORMAT
        )
        row["prev_hash"], row["row_hash"] = prev, digest
        out.append((record, row))
        prev = digest
    return out


def record_from_row(row: RowLike) -> AuditRecord:
    """Rebuild an ``AuditRecord`` from a stored row; ``AuditError`` if it names unknown values."""
    values = {name: row[name] for name in _EVENT_FIELDS}
    try:
        values.update(
            event=EventType(row["event"]),
            trigger=Trigger(row["trigger"]),
            registries=tuple(row["registries"]),
            # Text that does not parse (not written by us) reads as None. The row still verifies:
            # verification hashes the stored text, never this record (docs/audit.md).
            fingerprint=Fingerprint.read(row["fingerprint"]),
            previous_fingerprint=Fingerprint.read(row["previous_fingerprint"]),
        )
    except ValueError:
        raise AuditError(f"audit row {row['seq']} holds an unknown event or trigger") from None
    return AuditRecord(
        seq=row["seq"],
        recorded_at=row["recorded_at"],
        event=AuditEvent(**values),
        prev_hash=row["prev_hash"],
        row_hash=row["row_hash"],
        format=row.get("format") or 1,
    )
