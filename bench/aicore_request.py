"""CPU per `AICoreClient.edit` (issue 14): this checkout's client against another's, 1 and 16 threads.

Run from the repo root:  python -m bench.aicore_request [--edits 2000] [--rounds 3] [--threads 1 16]
                         [--old-rev main | --old-src DIR] [--latency-ms 0] [--out DIR]

The AI Core emulator runs in its own process (bench/sweep.py's EmulatorProcess: its CPU is
not counted) with one tenant and 16 pre-created secrets. Each measurement is a child process
(this file run with `--child`) whose PYTHONPATH is the checkout under test ("old":
`git archive` of --old-rev, or --old-src; "new": this checkout). The child configures logging
as production does (JSON, level info, to /dev/null), builds the client with `build_client`
(max_connections = threads), fetches its token and warms up with 50 edits, then runs --edits
PATCHes spread over --threads threads and reports ``time.process_time()`` (all its threads)
over them: CPU per edit is that divided by --edits. Old and new alternate, --rounds times
(the machine is shared and noisy); the table gives medians and every round.
Prints a table and writes JSON to bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TENANT = "tenant-00"
SECRETS = 16
WARM_UP = 50
VALUE = json.dumps(
    {"auths": {"registry.bench.example": {"username": "robot-bench", "password": "x" * 40, "auth": "y" * 72}}}
)


# --- the child: one client, N threads, CPU over the edits ------------------------------------


def child(*, key_file: str, threads: int, edits: int) -> None:
    """Measure `edits` PATCHes on `threads` threads; print one JSON line."""
    from service.aicore.client import build_client
    from service.aicore.servicekey import parse_service_key
    from service.config import RetryConfig
    from service.logs import configure
    from service.model import DockerConfigJson

    with open(os.devnull, "w") as sink:  # noqa: PTH123 (a stream for logging, as production writes JSON lines)
        configure(level="info", fmt="json", stream=sink)
        key = parse_service_key(Path(key_file).read_text())
        client = build_client(target=TENANT, key=key, timeout=10.0, retry=RetryConfig(), max_connections=threads)
        value = DockerConfigJson(VALUE)
        names = [f"reg-t00-s{index:03d}" for index in range(SECRETS)]
        for index in range(WARM_UP):
            client.edit(names[index % SECRETS], value)
        shares = [edits // threads + (1 if index < edits % threads else 0) for index in range(threads)]
        workers = [
            threading.Thread(target=_edit, args=(client, names[index % SECRETS], value, share))
            for index, share in enumerate(shares)
        ]
        wall, cpu = time.perf_counter(), time.process_time()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        client.close()
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "edits": edits, "threads": threads}))


def _edit(client: Any, name: str, value: Any, count: int) -> None:
    for _ in range(count):
        client.edit(name, value)


# --- the parent -------------------------------------------------------------------------------


def measure(*, src: Path, key_file: Path, threads: int, edits: int) -> dict[str, Any]:
    """One child run of the checkout at `src`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--key-file", str(key_file)]
    command += ["--threads", str(threads), "--edits", str(edits)]
    env = {**os.environ, "PYTHONPATH": str(src)}  # this script, but `service` from src
    done = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the child for {src} failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def archive(rev: str, into: Path) -> Path:
    """`git archive` of `rev` unpacked into `into`."""
    tar = into / "old.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(tar), rev], cwd=REPO, check=True)  # noqa: S607 (git from PATH, as a developer runs it)
    with tarfile.open(tar) as handle:
        handle.extractall(into / "old", filter="data")
    return into / "old"


def table(results: dict[str, dict[int, list[dict[str, Any]]]], *, edits: int) -> str:
    """Medians of CPU per edit (and wall), old against new, one row per thread count."""
    lines = [
        "| threads | old: CPU/edit (us) | new: CPU/edit (us) | change | old / new wall (s) | rounds (old ; new, us) |",
        "|---|---|---|---|---|---|",
    ]
    for threads in sorted(results["new"]):
        per = {side: [run["cpu_s"] / edits * 1e6 for run in results[side][threads]] for side in ("old", "new")}
        walls = {side: statistics.median(run["wall_s"] for run in results[side][threads]) for side in ("old", "new")}
        old, new = statistics.median(per["old"]), statistics.median(per["new"])
        rounds = " ".join(f"{v:.0f}" for v in per["old"]) + " ; " + " ".join(f"{v:.0f}" for v in per["new"])
        lines.append(
            f"| {threads} | {old:.0f} | {new:.0f} | {(new - old) / old:+.0%} | "
            f"{walls['old']:.2f} / {walls['new']:.2f} | {rounds} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--old-rev", default="main", help="the revision `git archive` gives the old client")
    parser.add_argument("--old-src", type=Path, help="a checkout of the old client (instead of --old-rev)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the emulator's wait per request")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--key-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(key_file=args.key_file, threads=args.threads[0], edits=args.edits)
        return
    from bench.sweep import EmulatorProcess, Layout, write_tenants

    with tempfile.TemporaryDirectory(prefix="bench-aicore-") as work_dir:
        work = Path(work_dir)
        old_src = args.old_src.resolve() if args.old_src else archive(args.old_rev, work)
        write_tenants(work / "tenants.json", Layout(tenants=1, per_tenant=SECRETS, sources=SECRETS))
        emulator = EmulatorProcess(
            tenants_file=work / "tenants.json", key_dir=work / "keys", latency_ms=args.latency_ms
        )
        key_file = work / "keys" / f"{TENANT}.json"
        results: dict[str, dict[int, list[dict[str, Any]]]] = {"old": {}, "new": {}}
        try:
            for _ in range(args.rounds):
                for threads in args.threads:
                    for side, src in (("old", old_src), ("new", REPO)):
                        run = measure(src=src, key_file=key_file, threads=threads, edits=args.edits)
                        results[side].setdefault(threads, []).append(run)
        finally:
            emulator.stop()
    text = table(results, edits=args.edits)
    print(f"CPU per AICoreClient.edit, {args.edits} edits, emulator in its own process, old = {old_src}\n")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {"edits": args.edits, "old": str(args.old_src or args.old_rev), "results": results, "table": text}
    (args.out / f"aicore_request-{stamp}.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
