"""The idle `rotator run` of issue 14 alone, for several checkouts in turn: CPU % of a core and RSS.

Run from the repo root:  python -m bench.idle [--src DIR ...] [--rounds 2] [--idle-s 60] [--profile DIR]

The world is bench/once.py's (5,000 secrets over 100 tenants, each with its own KV v2 path,
every pair every 6h, a durable PostgreSQL, the AI Core emulator at 20 ms): for each round and
each --src in turn (alternating, so that the machine's noise falls on all of them alike), a
fresh database, one `rotator once` to fill it (its CPU is not what is measured here), then
`rotator run` watched for --idle-s seconds after `worker.started` + --settle-s: its CPU
(utime + stime from /proc), RSS, threads and the sweeps it logged meanwhile (the scheduled
ticks of pairs whose phase fell in the window). Without --src it measures this checkout.
--worker-fills skips the `rotator once`: the worker's own catch-up sweep writes every pair of
the fresh database, and the window starts after it. That is the worker's steady state (every
pair rotated once, as after its first period, with whatever it keeps per rotated pair), where
the default measures a worker that has rotated only the pairs its window's ticks reached.
ROTATOR_BENCH_PYTHON names the interpreter the rotator runs on (bench/once.py says why).
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.once import REPO, RESULTS, ROTATOR_PYTHON, World, durable_server, idle_run, timed_once, world_scene
from bench.sweep import Layout, seed_sources


def measure(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    from service.sandbox.openbao import OpenBaoDevServer

    layout = Layout(args.tenants, args.secrets_per_tenant, args.tenants * args.secrets_per_tenant)
    results: dict[str, list[dict[str, Any]]] = {str(src): [] for src in args.src}
    with contextlib.ExitStack() as stack:
        stack_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rotator-bench-idle-")))
        bao = stack.enter_context(OpenBaoDevServer())
        admin = stack.enter_context(durable_server())
        seed_sources(bao.address, bao.root_token, layout.sources)
        for _ in range(args.rounds):
            for src in args.src:
                scene = {"admin_url": admin, "bao": bao, "src": src, "audit_key": secrets.token_hex(32)}
                with world_scene(
                    World("idle", layout, args.latency_ms), **scene, stack_dir=stack_dir, profile=args.profile
                ) as (rotator, emulator, _):
                    if not args.worker_fills:
                        timed_once(rotator, emulator, label="fill")
                    fills = layout.rotations if args.worker_fills else 0
                    run = idle_run(rotator, idle_s=args.idle_s, settle_s=args.settle_s, fills=fills)
                results[str(src)].append(run)
                print(
                    f"{src}: {run['cpu_pct_of_core']:.2f}% of a core, RSS {run['rss_mb']:.0f} MB,"
                    f" {run['threads']} threads, {run['sweeps_while_idle']} sweeps",
                    flush=True,
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, action="append", help="a checkout to run (repeat; default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--secrets-per-tenant", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--settle-s", type=float, default=5.0)
    parser.add_argument("--profile", type=Path, help="attach py-spy to each idle run (its figures then include it)")
    parser.add_argument(
        "--worker-fills", action="store_true", help="no `once` first: the worker's catch-up writes every pair"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.src = [src.resolve() for src in args.src or [REPO]]
    results = measure(args)
    filled_by = "the worker's own catch-up" if args.worker_fills else "`rotator once`"
    print(f"\nidle `rotator run`, {args.tenants * args.secrets_per_tenant} pairs every 6h, {args.idle_s:g} s:")
    print(f"(every pair written first by {filled_by})")
    print(f"(the rotator on {ROTATOR_PYTHON})")
    print(f"{'checkout':<40} {'CPU % of a core (median; runs)':<36} RSS MB (median)")
    for src, runs in results.items():
        cpu = [run["cpu_pct_of_core"] for run in runs]
        rss = [run["rss_mb"] for run in runs]
        each = ", ".join(f"{value:.2f}" for value in cpu)
        print(f"{src:<40} {statistics.median(cpu):.2f} ({each}){'':<8} {statistics.median(rss):.0f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"idle-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:4]}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
