"""Several processes appending at once keep one unbroken, gap-free chain."""

from __future__ import annotations

import itertools
import multiprocessing
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit.db import make_engine
from service.audit.store import AuditStore
from service.audit.tables import audit_events
from service.audit.verify import verify_chain
from service.config import DatabaseConfig
from tests.integration.audit.conftest import make_event

WORKERS = 4
APPENDS = 25


def _append_many(url: str, worker: int, barrier: Any) -> None:
    """Child process: wait for the others, then append batches of 1 to 3 events."""
    engine = make_engine(DatabaseConfig(url=url, pool_size=1), password=None)
    store = AuditStore(engine)
    barrier.wait(timeout=60)
    for step in range(APPENDS):
        batch = [make_event(actor=f"worker-{worker}", message=f"{step}.{part}") for part in range(step % 3 + 1)]
        store.append(batch)
    engine.dispose()


@pytest.mark.slow
def test_concurrent_processes_share_one_chain(engine: Engine, database_url: str) -> None:
    """Four processes appending at once: seqs 1..N without gaps, every batch whole and in order, chain verifies."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    processes = [context.Process(target=_append_many, args=(database_url, n, barrier)) for n in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * WORKERS

    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events.c.seq, audit_events.c.actor, audit_events.c.message)).all()
    per_worker = sum(step % 3 + 1 for step in range(APPENDS))
    assert sorted(row.seq for row in rows) == list(range(1, WORKERS * per_worker + 1))
    for worker in range(WORKERS):
        mine = [row.message for row in sorted(rows) if row.actor == f"worker-{worker}"]
        expected = [f"{step}.{part}" for step in range(APPENDS) for part in range(step % 3 + 1)]
        assert mine == expected
    actors = [row.actor for row in sorted(rows)]
    switches = sum(1 for before, after in itertools.pairwise(actors) if before != after)
    assert switches > WORKERS, "the appends did not interleave: the test proved nothing"
    result = verify_chain(engine)
    assert result.ok, result.problem
    assert result.rows_checked == WORKERS * per_worker
