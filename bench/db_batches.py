"""The engine's database work per rotation, by batch size, on a durable PostgreSQL (issue 14).

Run from the repo root:  python -m bench.db_batches [--pairs 2000] [--batches 1,18,64,128]
                         [--rotator-src DIR] [--out DIR]

What one written rotation asks of the database, through the real stores (``service/audit``)
on an embedded server started durably (fsync, synchronous_commit, full_page_writes on; or the
server ROTATOR_BENCH_DATABASE_URL names): claim its lease and load its state, append its
intent, append its outcome, save its state and release the lease. The work goes in batches of
``--batches`` pairs on one thread, as the engine's group commit hands it over; printed is the
CPU of this process (user + system) per rotation for each step, for the first sweep (rows
new) and a second one (rows exist). ``--rotator-src`` imports the stores of another checkout
(e.g. a ``git archive`` of main) to compare before and after in one session: that checkout
may not have ``claim_loaded``, then its claim and load are timed as two steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

STEPS = ("claim", "load", "intent", "outcome", "save")


@contextmanager
def durable_database() -> Iterator[Callable[[], Any]]:
    """A factory of fresh migrated engines on a durable server."""
    from bench.audit_scale import _fresh
    from bench.once import durable_server
    from service.audit import migrate
    from service.audit.db import make_engine
    from service.config import DatabaseConfig

    with durable_server() as admin:
        opened: list[Any] = []

        def fresh() -> Any:
            gen = _fresh(admin)
            url = next(gen)
            engine = make_engine(DatabaseConfig(url=url, pool_size=4), password=None)
            migrate.upgrade(engine)
            opened.append((engine, gen))
            return engine

        try:
            yield fresh
        finally:
            for engine, gen in opened:
                engine.dispose()
                gen.close()


def event(kind: Any, key: Any, *, intent_seq: int | None = None) -> Any:
    from service.model import AuditEvent, Trigger

    return AuditEvent(
        event=kind,
        run_id="0" * 16,
        target=key.target,
        api_host="api.ai.example.com",
        secret=key.secret,
        registries=("registry.example.com",),
        trigger=Trigger.SCHEDULE,
        actor="bench",
        source_mount="secret",
        source_path=f"bench/{key.secret}",
        source_version=1,
        vault_request_id=str(uuid.uuid4()),
        registry_username="robot",
        fingerprint="hmac-sha256:k1:" + "a" * 64,
        intent_seq=intent_seq,
        http_status=202 if intent_seq else None,
        duration_ms=20 if intent_seq else None,
    )


def sweep(state: Any, audit: Any, keys: list[Any], batch: int) -> dict[str, float]:
    """One sweep of ``keys`` in batches; CPU seconds per step."""
    from service.model import EventType, RotationState

    parts = dict.fromkeys(STEPS, 0.0)
    ttl = timedelta(minutes=5)

    def timed(step: str, call: Callable[[], Any]) -> Any:
        started = time.process_time()
        value = call()
        parts[step] += time.process_time() - started
        return value

    for at in range(0, len(keys), batch):
        part = keys[at : at + batch]
        if hasattr(state, "claim_loaded"):
            claimed = timed("claim", lambda p=part: state.claim_loaded(p, owner="bench", ttl=ttl, due_by=None))
            grants = {key: grant for key, (grant, _) in claimed.items()}
        else:
            grants = timed("claim", lambda p=part: state.claim(p, owner="bench", ttl=ttl, due_by=None))
            timed("load", lambda g=grants: state.load(list(g)))
        intents = timed("intent", lambda p=part: audit.append([event(EventType.INTENT, k) for k in p]))
        outcomes = [event(EventType.APPLIED, k, intent_seq=r.seq) for k, r in zip(part, intents, strict=True)]
        timed("outcome", lambda o=outcomes: audit.append(o))
        now = datetime.now(UTC)
        states = [
            RotationState(
                key=key,
                fingerprint="hmac-sha256:k1:" + "a" * 64,
                source_version=1,
                last_outcome="applied",
                last_attempt_at=now,
                last_success_at=now,
                last_checked_at=now,
                next_run_at=now + timedelta(hours=6),
            )
            for key in part
        ]
        timed("save", lambda s=states, g=grants: state.save(s, release=list(g.values())))
    return parts


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from service.audit.instance import InstanceLock
    from service.audit.state import PostgresStateStore
    from service.audit.store import AuditStore
    from service.model import RotationKey

    keys = [RotationKey(f"tenant-{i % 100:02d}", f"reg-{i:05d}") for i in range(args.pairs)]
    rows = []
    with durable_database() as fresh:
        for batch in args.batches:
            engine = fresh()
            with InstanceLock(engine, "bench") as lock:
                state, audit = PostgresStateStore(engine, instance=lock), AuditStore(engine)
                for sweep_name in ("first", "second"):
                    started = time.process_time()
                    parts = sweep(state, audit, keys, batch)
                    total = time.process_time() - started
                    rows.append(
                        {"batch": batch, "sweep": sweep_name, "ms_per_rotation": 1000 * total / len(keys)}
                        | {f"{step}_ms": 1000 * parts[step] / len(keys) for step in STEPS}
                    )
    return {"pairs": args.pairs, "src": str(args.rotator_src), "rows": rows}


def print_table(results: dict[str, Any]) -> None:
    print(f"\ndatabase CPU per written rotation ({results['pairs']} pairs, stores of {results['src']}):")
    print(f"{'batch':>6} {'sweep':>7} {'total ms':>9} " + " ".join(f"{s:>8}" for s in STEPS))
    for row in results["rows"]:
        cells = " ".join(f"{row[f'{step}_ms']:8.3f}" for step in STEPS)
        print(f"{row['batch']:>6} {row['sweep']:>7} {row['ms_per_rotation']:9.3f} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--batches", type=lambda text: [int(x) for x in text.split(",")], default=[1, 18, 64, 128])
    parser.add_argument("--rotator-src", type=Path, default=Path.cwd())
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if args.rotator_src.resolve() != Path.cwd().resolve():
        sys.path.insert(0, str(args.rotator_src.resolve()))  # its service package wins over ours
    os.environ.setdefault("ROTATOR_LOG_LEVEL", "warning")
    import logging

    logging.disable(logging.INFO)
    results = measure(args)
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"db-batches-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
