"""The canonical encoding and hash chain, as docs/audit.md specifies them (no database)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.audit.chain import (
    GENESIS,
    canonical_bytes,
    chain,
    event_row,
    format_time,
    record_from_row,
    record_row,
    row_hash,
)
from service.audit.tables import HASHED_COLUMNS, audit_events
from service.audit.verify import ChainWalker, ProblemKind
from service.model import AuditEvent, ChainHead, EventType, Fingerprint, Trigger

AT = datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)
EVENT = AuditEvent(
    event=EventType.APPLIED,
    run_id="r1",
    target="eu",
    api_host="api.example.com",
    secret="ghcr-pull",
    registries=("ghcr.io", "docker.io"),
    trigger=Trigger.SCHEDULE,
    actor="pod-0/1.0",
    message="café ✓",
    http_status=202,
    intent_seq=1,
)
EXPECTED = (
    '{"actor":"pod-0/1.0","aicore_error_code":null,"aicore_request_id":null,"api_host":"api.example.com",'
    '"duration_ms":null,"error_code":null,"event":"applied","fingerprint":null,"format":2,"http_status":202,'
    '"intent_seq":1,"message":"café ✓","operator":null,"previous_fingerprint":null,"reason":null,'
    '"recorded_at":"2024-05-01T12:00:00.000005Z","registries":["ghcr.io","docker.io"],"registry_username":null,'
    '"run_id":"r1","secret":"ghcr-pull","seq":2,"source_mount":null,"source_path":null,"source_version":null,'
    '"target":"eu","trigger":"schedule","vault_request_id":null,"verification":null}'
)
# The same row as format 1 (written before migration 0002): exactly the 24 members of 0001.
EXPECTED_V1 = (
    '{"actor":"pod-0/1.0","aicore_request_id":null,"api_host":"api.example.com","duration_ms":null,'
    '"error_code":null,"event":"applied","fingerprint":null,"http_status":202,"intent_seq":1,'
    '"message":"café ✓","previous_fingerprint":null,"recorded_at":"2024-05-01T12:00:00.000005Z",'
    '"registries":["ghcr.io","docker.io"],"registry_username":null,"run_id":"r1","secret":"ghcr-pull",'
    '"seq":2,"source_mount":null,"source_path":null,"source_version":null,"target":"eu","trigger":"schedule",'
    '"vault_request_id":null,"verification":null}'
)


def test_canonical_bytes_match_the_specification() -> None:
    """Sorted keys, no whitespace, nulls kept, UTF-8 unescaped, microsecond UTC times, arrays in order."""
    assert canonical_bytes(event_row(EVENT, seq=2, recorded_at=AT)) == EXPECTED.encode("utf-8")


def test_format_1_rows_keep_their_24_members() -> None:
    """A row written before migration 0002 hashes exactly as it did: no format, operator, reason or AI Core code."""
    row = {**event_row(EVENT, seq=2, recorded_at=AT), "format": 1}
    assert canonical_bytes(row) == EXPECTED_V1.encode("utf-8")


def test_an_unknown_format_is_refused() -> None:
    """A row claiming a format this version does not know is not hashed by guesswork."""
    with pytest.raises(ValueError, match="unknown canonical format"):
        canonical_bytes({**event_row(EVENT, seq=2, recorded_at=AT), "format": 3})


def test_format_2_members_are_hashed() -> None:
    """The operator, the reason and AI Core's own code are covered by the hash of a format 2 row."""
    plain = row_hash(GENESIS, event_row(EVENT, seq=2, recorded_at=AT))
    for name in ("operator", "reason", "aicore_error_code"):
        changed = dataclasses.replace(EVENT, **{name: "x"})
        assert row_hash(GENESIS, event_row(changed, seq=2, recorded_at=AT)) != plain


def test_row_hash_is_sha256_of_prev_hash_and_canonical_bytes() -> None:
    """row_hash = sha256(prev_hash hex as ASCII || canonical bytes)."""
    prev = "ab" * 32
    expected = hashlib.sha256(prev.encode("ascii") + EXPECTED.encode("utf-8")).hexdigest()
    assert row_hash(prev, event_row(EVENT, seq=2, recorded_at=AT)) == expected


def test_times_are_written_in_utc() -> None:
    """A time with another offset is converted to UTC; microseconds are always six digits."""
    plus_two = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(plus_two) == "2024-05-01T12:00:00.000000Z"


def test_every_column_but_the_hashes_is_hashed() -> None:
    """The hashed set is exactly the table's columns minus prev_hash and row_hash."""
    names = [column.name for column in audit_events.columns]
    assert list(HASHED_COLUMNS) == [name for name in names if name not in ("prev_hash", "row_hash")]
    assert set(HASHED_COLUMNS) == set(event_row(EVENT, seq=1, recorded_at=AT))


def test_chain_numbers_and_links_a_batch() -> None:
    """A batch continues from the head: seq + 1, + 2, each prev_hash the previous row_hash."""
    first, second = chain([EVENT, EVENT], head=ChainHead(7, "cd" * 32), recorded_at=AT)
    assert (first.seq, second.seq) == (8, 9)
    assert first.prev_hash == "cd" * 32
    assert second.prev_hash == first.row_hash != second.row_hash


def _rows(count: int) -> list[dict[str, object]]:
    rows, prev = [], GENESIS
    for record in chain([EVENT] * count, head=ChainHead(0, GENESIS), recorded_at=AT):
        rows.append(
            {**event_row(record.event, seq=record.seq, recorded_at=AT), "prev_hash": prev, "row_hash": record.row_hash}
        )
        prev = record.row_hash
    return rows


def test_walker_accepts_a_valid_chain() -> None:
    """Fed a valid chain, the walker finds nothing and ends at the last row."""
    walker = ChainWalker()
    rows = _rows(3)
    assert [walker.feed(row) for row in rows] == [None, None, None]
    assert walker.finish(ChainHead(3, str(rows[-1]["row_hash"]))) is None
    assert walker.rows_checked == 3


def test_walker_on_an_empty_trail_with_an_anchor() -> None:
    """An anchor on an empty trail means every row up to it was deleted."""
    problem = ChainWalker(anchor=ChainHead(5, "ab" * 32)).finish(ChainHead(0, GENESIS))
    assert problem is not None
    assert (problem.seq, problem.kind) == (1, ProblemKind.DELETED_AFTER_ANCHOR)


def test_walker_reports_a_gap_of_several_rows() -> None:
    """Rows 2..3 missing is one problem at seq 2 naming the range."""
    rows = _rows(4)
    walker = ChainWalker()
    assert walker.feed(rows[0]) is None
    problem = walker.feed(rows[3])
    assert problem is not None
    assert (problem.seq, problem.kind, problem.detail) == (
        2,
        ProblemKind.MISSING,
        "rows 2..3 are missing (the next row is 4)",
    )


def test_walker_reports_a_first_row_not_from_genesis() -> None:
    """A first row whose prev_hash is not the genesis hash (but whose own hash fits) is changed."""
    row = _rows(1)[0]
    row["prev_hash"] = "11" * 32
    row["row_hash"] = row_hash("11" * 32, row)
    problem = ChainWalker().feed(row)
    assert problem is not None
    assert (problem.seq, problem.kind) == (1, ProblemKind.CHANGED)


def test_walker_reports_a_row_it_cannot_encode() -> None:
    """A row whose prev_hash is not ASCII hex (a dropped constraint) is reported, not a crash."""
    row = _rows(1)[0]
    row["prev_hash"] = "é" * 64
    problem = ChainWalker().feed(row)
    assert problem is not None
    assert (problem.seq, problem.kind) == (1, ProblemKind.CHANGED)


NEW_FP, OLD_FP = "hmac-sha256:k1:" + "ab" * 32, "hmac-sha256:k0:" + "cd" * 32
TYPED = dataclasses.replace(
    EVENT, fingerprint=Fingerprint.parse(NEW_FP), previous_fingerprint=Fingerprint.parse(OLD_FP)
)


def test_fingerprints_are_hashed_as_their_text() -> None:
    """A typed fingerprint hashes to the same bytes as its text did before the type: existing trails still verify."""
    row = event_row(TYPED, seq=2, recorded_at=AT)
    as_text = {**event_row(EVENT, seq=2, recorded_at=AT), "fingerprint": NEW_FP, "previous_fingerprint": OLD_FP}
    assert (row["fingerprint"], row["previous_fingerprint"]) == (NEW_FP, OLD_FP)
    assert canonical_bytes(row) == canonical_bytes(as_text)
    assert f'"fingerprint":"{NEW_FP}"'.encode() in canonical_bytes(row)
    assert canonical_bytes({**row, "format": 1}) == canonical_bytes({**as_text, "format": 1})


def test_a_stored_row_reads_back_with_typed_fingerprints() -> None:
    """A record written and read back is equal, fingerprints typed again."""
    (record,) = chain([TYPED], head=ChainHead(0, GENESIS), recorded_at=AT)
    again = record_from_row(record_row(record))
    assert again == record
    assert again.event.fingerprint == Fingerprint(key_id="k1", digest="ab" * 32)


def test_a_foreign_fingerprint_text_still_verifies_and_reads_as_none() -> None:
    """A row holding a fingerprint this service could not have written verifies on its stored text; it reads as None."""
    row: dict[str, object] = {**_rows(1)[0], "fingerprint": "sha1:legacy:0123", "previous_fingerprint": "HMAC?"}
    row["row_hash"] = row_hash(GENESIS, row)
    assert ChainWalker().feed(row) is None
    event = record_from_row(row).event
    assert (event.fingerprint, event.previous_fingerprint) == (None, None)
    tampered = {**row, "fingerprint": "sha1:legacy:0124"}
    problem = ChainWalker().feed(tampered)
    assert problem is not None
    assert problem.kind is ProblemKind.CHANGED
