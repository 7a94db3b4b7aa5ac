"""CPU per rotation of the sweep engine alone (issue 14): the ``Rotator`` over the fakes, no I/O.

Run from the repo root:  python -m bench.engine [--src DIR ...] [--rounds 3] [--tenants 100]
                         [--secrets-per-tenant 50] [--threads 64] [--out DIR]

What it compares: the engine's own cost (the pool, the group commit's batchers, the steps,
``Once``, building results, contexts and states) between checkouts, with every port a fake from
``tests/fakes.py``: no Vault, AI Core or PostgreSQL, so what is left is the Python the engine
runs per rotation, in --threads rotation threads. Each measurement is a child process (this
file run with ``--child``) whose PYTHONPATH is the checkout under test; it sweeps
--tenants x --secrets-per-tenant pairs (each its own source) twice: (a) every credential new,
one write each; (b) nothing changed. CPU is ``time.process_time()`` of the child (all
threads) over each sweep, per rotation. Checkouts alternate, --rounds times; the table gives
medians and every round. Prints a table and writes JSON to bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def child(tenants: int, per_tenant: int, threads: int) -> dict[str, float]:
    """Two sweeps in this process over the fakes; CPU microseconds per rotation of each."""
    from service.config import SecretConfig, SourceConfig
    from service.engine import Rotator, RotatorOptions
    from service.rotation import SweepRequest
    from tests.fakes import FakeAudit, FakeClock, FakeSource, FakeState, FakeStore, FakeVerifier, RecordingListener

    clock = FakeClock()
    source = FakeSource(clock=clock)
    targets = [f"tenant-{t:03d}" for t in range(tenants)]
    stores = {target: FakeStore(target=target) for target in targets}
    secrets = []
    for t, target in enumerate(targets):
        for s in range(per_tenant):
            name, path = f"sec-{t:03d}-{s:03d}", f"bench/{t:03d}/{s:03d}"
            source.put(path, "robot", f"password-{t}-{s}")
            stores[target].existing.add(name)
            config = SecretConfig(
                name=name, targets=[target], registries=["registry.bench.example"], source=SourceConfig(path=path)
            )
            secrets.append(config.spec())
    rotator = Rotator(
        source=source,
        stores=stores.__getitem__,
        audit=FakeAudit(clock=clock),
        state=FakeState(clock=clock),
        verifier=FakeVerifier(),
        listener=RecordingListener(),
        clock=clock,
        options=RotatorOptions(
            audit_key=b"k" * 32,
            audit_key_id="k1",
            actor="rotator/bench@host",
            owner="bench",
            lease_ttl=timedelta(minutes=5),
            max_concurrency=threads,
            per_target_concurrency=4,
            schedule_next=lambda secret, now: now + timedelta(hours=6),
        ),
    )
    out = {}
    try:
        for part, outcome in (("written", "applied"), ("unchanged", "unchanged")):
            started = time.process_time()
            report = rotator.sweep(SweepRequest(secrets=secrets))
            cpu = time.process_time() - started
            outcomes = {str(result.outcome) for result in report.results}
            if outcomes != {outcome}:
                raise RuntimeError(f"the {part} sweep came to {sorted(outcomes)}, not {outcome}")
            out[f"{part}_us"] = 1e6 * cpu / len(report.results)
    finally:
        rotator.close()
    return out


def measure(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {str(src): [] for src in args.src}
    for _ in range(args.rounds):
        for src in args.src:
            command = [sys.executable, "-m", "bench.engine", "--child"]
            command += ["--tenants", str(args.tenants), "--secrets-per-tenant", str(args.secrets_per_tenant)]
            command += ["--threads", str(args.threads)]
            env = {**os.environ, "PYTHONPATH": str(src)}
            done = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{src}: the child failed: {done.stderr[-2000:]}")
            run = json.loads(done.stdout.splitlines()[-1])
            results[str(src)].append(run)
            print(f"{src}: written {run['written_us']:.0f} us, unchanged {run['unchanged_us']:.0f} us", flush=True)
    return results


def summary(results: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Per checkout: the median of each part and every round."""
    return [
        {
            "src": src,
            **{f"{part}_median_us": statistics.median(run[f"{part}_us"] for run in runs) for part in PARTS},
            **{f"{part}_runs_us": [run[f"{part}_us"] for run in runs] for part in PARTS},
        }
        for src, runs in results.items()
    ]


PARTS = ("written", "unchanged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, action="append", help="a checkout to run (repeat; default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--secrets-per-tenant", type=int, default=50)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.tenants, args.secrets_per_tenant, args.threads)))
        return
    args.src = [src.resolve() for src in args.src or [REPO]]
    rows = summary(measure(args))
    pairs = args.tenants * args.secrets_per_tenant
    print(f"\nthe engine over the fakes, {pairs} pairs, {args.threads} threads: CPU per rotation (median; rounds)")
    print(f"{'checkout':<40} {'(a) written, us':<28} (b) unchanged, us")
    for row in rows:
        cells = [
            f"{row[f'{part}_median_us']:.0f} ({', '.join(f'{v:.0f}' for v in row[f'{part}_runs_us'])})"
            for part in PARTS
        ]
        print(f"{row['src']:<40} {cells[0]:<28} {cells[1]}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"engine-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:4]}.json"
    path.write_text(json.dumps(rows, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
