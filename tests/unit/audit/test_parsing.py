"""Option values of the audit commands: times, anchors, role names, short fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.audit.grants import grants_sql
from service.audit.output import short_digest
from service.audit.queries import parse_anchor, parse_time
from service.model import ChainHead

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (" 30m ", NOW - timedelta(minutes=30)),
    ],
)
def test_parse_time_accepts_iso_and_durations_ago(text: str, expected: datetime) -> None:
    """ISO 8601 (naive is UTC) or a duration before now."""
    parsed = parse_time(text, now=NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "24", "-1h", "2024-13-01", "", "P1D"])
def test_parse_time_refuses_other_text(text: str) -> None:
    """Anything else is a ValueError that says which forms work."""
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time(text, now=NOW)


def test_parse_time_keeps_the_offset_meaning() -> None:
    """An explicit offset is honoured, not replaced by UTC."""
    parsed = parse_time("2024-05-01T12:00:00-05:00", now=NOW)
    assert parsed.utcoffset() == timezone(timedelta(hours=-5)).utcoffset(None)


def test_parse_anchor() -> None:
    """SEQ:HASH with 64 hex digits, upper case accepted and normalised."""
    assert parse_anchor("12:" + "AB" * 32) == ChainHead(12, "ab" * 32)
    for bad in ("12", "x:" + "ab" * 32, "0:" + "ab" * 32, "12:" + "ab" * 31, "12:" + "zz" * 32):
        with pytest.raises(ValueError, match="not an anchor"):
            parse_anchor(bad)


def test_grants_give_the_app_no_update_or_delete_on_the_trail() -> None:
    """The script grants the app SELECT and INSERT on audit_events only, and readers SELECT only."""
    sql = grants_sql(app_role="app", reader_role="reader")
    assert 'GRANT SELECT, INSERT ON audit_events TO "app";' in sql
    tables = "audit_events, audit_chain_head, rotation_state, leases, pauses, pins, alembic_version"
    assert f'GRANT SELECT ON {tables} TO "reader";' in sql
    grants = [line for line in sql.splitlines() if line.startswith("GRANT")]
    assert not any("TRUNCATE" in line for line in grants)
    deleting = [line.split(" ON ")[1].split()[0] for line in grants if "DELETE" in line]
    assert deleting == ["pauses", "pins"], "only operator controls are ever deleted (resume, unpin)"
    assert not any("UPDATE" in line and "audit_events" in line for line in grants)


def test_short_fingerprint() -> None:
    """The table shows the first 12 hex digits of the digest, nothing for none."""
    assert short_digest("hmac-sha256:k1:" + "0123456789abcdef" * 4) == "0123456789ab"
    assert short_digest(None) == ""
