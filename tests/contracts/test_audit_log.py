"""The AuditLog port (service/ports.py), the same suite over FakeAudit and AuditStore."""

from __future__ import annotations

from typing import Any

from service.model import AuditEvent, EventType, Fingerprint, Trigger
from tests.contracts.conftest import AuditWorld


def _event(kind: EventType = EventType.INTENT, **overrides: Any) -> AuditEvent:
    """An event for eu/ghcr-pull unless overridden."""
    values: dict[str, Any] = {
        "event": kind,
        "run_id": "run-1",
        "target": "eu",
        "api_host": "api.ai.eu.example.com",
        "secret": "ghcr-pull",
        "registries": ("ghcr.io",),
        "trigger": Trigger.SCHEDULE,
        "actor": "rotator-0/0.1.0",
        "source_mount": "secret",
        "source_path": "registries/ghcr",
        "source_version": 3,
        "fingerprint": Fingerprint(key_id="k1", digest="ab" * 32),
        "previous_fingerprint": Fingerprint(key_id="k0", digest="cd" * 32),
    }
    return AuditEvent(**(values | overrides))


def _outcome(intent_seq: int, kind: EventType = EventType.APPLIED) -> AuditEvent:
    return _event(kind, intent_seq=intent_seq, http_status=202)


def test_an_empty_trail_has_no_head_and_no_open_intents(audit_world: AuditWorld) -> None:
    """Before any append, head() is None and open_intents() is empty."""
    assert audit_world.log.head() is None
    assert audit_world.log.open_intents() == []


def test_append_numbers_events_in_order_and_returns_their_records(audit_world: AuditWorld) -> None:
    """Events get seq 1, 2, 3 in the order given, across appends; the records carry the events unchanged."""
    first = [_event(secret="a"), _event(secret="b")]
    second = [_event(secret="c")]
    records = audit_world.log.append(first) + audit_world.log.append(second)
    assert [record.seq for record in records] == [1, 2, 3]
    assert [record.event for record in records] == first + second


def test_appended_records_form_a_hash_chain(audit_world: AuditWorld) -> None:
    """Each record's prev_hash is the row_hash before it, row hashes differ, and head() is the newest record."""
    records = audit_world.log.append([_event(secret="a"), _event(secret="b")])
    records += audit_world.log.append([_event(secret="c")])
    assert [record.prev_hash for record in records[1:]] == [record.row_hash for record in records[:-1]]
    assert len({record.row_hash for record in records}) == 3
    head = audit_world.log.head()
    assert head is not None
    assert (head.seq, head.row_hash) == (3, records[-1].row_hash)


def test_recorded_times_never_go_backwards(audit_world: AuditWorld) -> None:
    """Along the chain, recorded_at is timezone-aware and never decreases."""
    records = audit_world.log.append([_event()]) + audit_world.log.append([_event(), _event()])
    times = [record.recorded_at for record in records]
    assert all(moment.tzinfo is not None for moment in times)
    assert times == sorted(times)


def test_append_is_committed_before_it_returns(audit_world: AuditWorld) -> None:
    """Once append returns, another reader of the trail sees the new head and the open intent."""
    [record] = audit_world.log.append([_event()])
    head = audit_world.reader.head()
    assert head is not None
    assert (head.seq, head.row_hash) == (record.seq, record.row_hash)
    assert [open_.seq for open_ in audit_world.reader.open_intents()] == [record.seq]


def test_appending_nothing_changes_nothing(audit_world: AuditWorld) -> None:
    """append([]) returns no records and leaves the head where it was."""
    audit_world.log.append([_event()])
    before = audit_world.log.head()
    assert audit_world.log.append([]) == []
    assert audit_world.log.head() == before


def test_open_intents_are_the_intents_no_outcome_names(audit_world: AuditWorld) -> None:
    """Only intents that no outcome's intent_seq names are open, oldest first; outcomes themselves never are."""
    log = audit_world.log
    intents = log.append([_event(secret=name) for name in ("a", "b", "c", "d")])
    by_secret = {record.event.secret: record.seq for record in intents}
    log.append([_outcome(by_secret["a"]), _outcome(by_secret["c"], EventType.FAILED)])
    log.append([_outcome(by_secret["d"], EventType.INTERRUPTED), _event(EventType.PAUSED, operator="ops")])
    assert log.open_intents() == [intents[1]]


def test_open_intents_after_n_lists_only_later_intents(audit_world: AuditWorld) -> None:
    """open_intents(after=N) returns the open intents with seq greater than N only."""
    log = audit_world.log
    seqs = [record.seq for record in log.append([_event(secret=f"s{n}") for n in range(5)])]
    log.append([_outcome(seqs[3])])
    assert [record.seq for record in log.open_intents(after=0)] == [seqs[0], seqs[1], seqs[2], seqs[4]]
    assert [record.seq for record in log.open_intents(after=seqs[1])] == [seqs[2], seqs[4]]
    assert [record.seq for record in log.open_intents(after=seqs[2])] == [seqs[4]]
    assert log.open_intents(after=seqs[4]) == []
