"""Audit trail at scale: `audit list` latency with 1,000,000 rows, and `audit verify` in bounded memory.

Run from the repo root:  python -m bench.audit_scale [--rows 1000000] [--small 100000] [--runs 20]

It starts its own embedded PostgreSQL (unless ROTATOR_BENCH_DATABASE_URL names a server on
which it may create a database), migrates a fresh database, loads validly chained rows with
COPY (hashed by service.audit.chain, so `audit verify` accepts them), and measures:
- `audit list` through `commands.audit_list` with each filter, LIMIT 100: median and p95 of
  --runs runs, plus the plan's top node for the --secret query (an index scan, not a sort);
- `audit verify` (and `audit export --format jsonl` to /dev/null) at --small rows and at --rows
  rows, each in a fresh child process: rows/s and the child's peak RSS, to compare memory at
  10x the rows (streaming means it does not grow);
- `audit verify --anchors FILE` at --rows rows with one Ed25519-signed anchor per 1,000 rows;
- `audit export --after-seq N` of the last 1,000 rows (a SIEM shipper's poll), median of --runs;
- `audit report --since 30d --no-verify` as HTML and as JSON (the rows span 90 days).
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from service.audit.tables import audit_events

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TARGETS, SECRETS, ACTORS = 200, 500, 3
RARE_SECRET, RARE_COUNT = "rare-secret", 10
ANCHOR_EVERY = 1000  # the worker anchors after each sweep that moved the head; here one per 1,000 rows
TAIL = 1000  # `export --after-seq` of the last this-many rows
COPY_COLUMNS = tuple(column.name for column in audit_events.columns)


@dataclass
class Loader:
    """Generates the chain row by row; keeps only its head between loads."""

    total: int
    start: datetime
    seq: int = 0
    prev: str = "0" * 64
    intent: int | None = None
    step: timedelta = field(init=False)
    heads: list[tuple[int, str]] = field(default_factory=list)  # every ANCHOR_EVERY-th row: what anchors sign

    def __post_init__(self) -> None:
        self.step = timedelta(days=90) / self.total

    def rows(self, count: int) -> Iterator[dict[str, Any]]:
        from service.audit.chain import row_hash

        rare_every = max(1, self.total // RARE_COUNT)
        for _ in range(count):
            self.seq += 1
            row = self._row(self.seq, rare=self.seq % rare_every == 0)
            row["prev_hash"], row["row_hash"] = self.prev, row_hash(self.prev, row)
            self.prev = row["row_hash"]
            if self.seq % ANCHOR_EVERY == 0:
                self.heads.append((self.seq, self.prev))
            yield row

    def _row(self, seq: int, *, rare: bool) -> dict[str, Any]:
        pair, is_outcome = divmod(seq - 1, 2)
        run = pair // 20
        secret = RARE_SECRET if rare else f"secret-{(pair * 7919) % SECRETS:03d}"
        roll = pair % 100
        event = ("failed" if roll == 0 else "interrupted" if roll == 1 else "applied") if is_outcome else "intent"
        digest = hashlib.sha256(str(pair).encode()).hexdigest()
        manual = pair % 1000 == 999  # one rotation in 1,000 run by hand: the report's manual actions
        return {
            "seq": seq,
            "recorded_at": self.start + self.step * seq,
            "event": event,
            "run_id": f"run-{run:06d}",
            "target": f"tenant-{(pair * 31) % TARGETS:03d}",
            "api_host": "api.ai.example.com",
            "secret": secret,
            "registries": ["ghcr.io"],
            "trigger": "manual" if manual else "schedule",
            "actor": f"rotator/0.1.0@rotator-{run % ACTORS}",
            "source_mount": "secret",
            "source_path": f"registries/{secret}",
            "source_version": pair,
            "vault_request_id": f"req-{pair}",
            "registry_username": "robot$ci",
            "fingerprint": f"hmac-sha256:k1:{digest}",
            "previous_fingerprint": None,
            "verification": "ok",
            "http_status": (403 if event == "failed" else 202) if is_outcome else None,
            "aicore_request_id": f"ai-{pair}" if is_outcome else None,
            "error_code": "aicore_forbidden" if event == "failed" else None,
            "message": None,
            "duration_ms": 150 + pair % 300 if is_outcome else None,
            "intent_seq": seq - 1 if is_outcome else None,
            "operator": "alice@ops" if manual else None,
            "reason": "bench: rotated by hand" if manual else None,
            "aicore_error_code": "ForbiddenAccess" if event == "failed" else None,
            "format": 2,
        }


def load(url: str, loader: Loader, count: int) -> float:
    """COPY ``count`` more rows and move the chain head; returns seconds taken."""
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY audit_events ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for row in loader.rows(count):
                copy.write_row([row[name] for name in COPY_COLUMNS])
        conn.execute("UPDATE audit_chain_head SET seq = %s, row_hash = %s", (loader.seq, loader.prev))
        conn.execute("ANALYZE audit_events")
    return time.perf_counter() - began


def child(mode: str, url: str, anchors: str | None = None) -> None:
    """In a fresh process: run verify or export once, print rows/s and peak RSS as JSON."""
    from service.audit import commands
    from service.audit.db import make_engine
    from service.config import DatabaseConfig

    engine = make_engine(DatabaseConfig(url=url, pool_size=1), password=None)
    report = io.StringIO()
    began = time.perf_counter()
    if mode == "verify":
        code = commands.audit_verify(engine, anchor=None, out=report)
    elif mode == "verify-anchors":
        code = verify_with_anchors(engine, Path(str(anchors)), report)
    elif mode == "export":
        with Path(os.devnull).open("w") as sink:
            code = commands.audit_export(engine, fmt="jsonl", since=None, until=None, out=sink)
    else:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM audit_chain_head"))
        code = 0
    seconds = time.perf_counter() - began
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"mode": mode, "exit": code, "seconds": seconds, "maxrss_kb": maxrss_kb, "report": report.getvalue()}
        )
    )


def verify_with_anchors(engine: Engine, anchors_file: Path, report: io.StringIO) -> int:
    """`audit verify --anchors FILE` as the command line runs it: load, check every signature, walk the chain."""
    from service.anchors import Ed25519Signer, load_anchors
    from service.audit import commands

    key = anchors_file.with_suffix(".pem").read_text()
    anchors = load_anchors(str(anchors_file), read_vault=lambda _: ("", []))
    signer = Ed25519Signer.from_pem(key, where="bench key")
    return commands.audit_verify(
        engine, anchor=None, out=report, anchors=anchors, anchors_from=str(anchors_file), signer=signer
    )


def _fail(sink: str, error: Exception) -> None:
    raise RuntimeError(f"anchor sink {sink} failed: {error}")


def write_anchors(heads: list[tuple[int, str]], directory: Path) -> Path:
    """Sign each head with a fresh Ed25519 key into an anchor file (the key beside it, as .pem)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from service.anchors import Anchorer, Ed25519Signer, FileSink
    from service.model import ChainHead

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = directory / "anchors.jsonl"
    path.with_suffix(".pem").write_bytes(pem)
    anchorer = Anchorer(
        signer=Ed25519Signer.from_pem(pem.decode(), where="bench key"),
        sinks=[FileSink(path)],
        instance="bench",
        clock=lambda: datetime.now(UTC),
        on_failure=_fail,
    )
    for seq, digest in heads:
        anchorer.head_moved(ChainHead(seq, digest))
    return path


def time_tail_export(engine: Engine, *, after_seq: int, runs: int) -> dict[str, Any]:
    """`audit export --after-seq N` of the last TAIL rows (a SIEM shipper's poll), in-process."""
    from service.audit import commands

    samples, lines = [], 0
    for _ in range(runs):
        out, err = io.StringIO(), io.StringIO()
        began = time.perf_counter()
        code = commands.audit_export(engine, fmt="jsonl", since=None, until=None, after_seq=after_seq, out=out, err=err)
        samples.append((time.perf_counter() - began) * 1000)
        assert code == 0, err.getvalue()
        lines = out.getvalue().count("\n")
    samples.sort()
    return {"median_ms": statistics.median(samples), "max_ms": samples[-1], "rows": lines}


def time_report(engine: Engine, directory: Path, *, fmt: str, runs: int) -> dict[str, Any]:
    """`audit report --since 30d --no-verify` (the chain walk is `audit verify`, timed on its own)."""
    from service.audit import commands

    samples, output = [], directory / f"report.{fmt}"
    for _ in range(runs):
        began = time.perf_counter()
        code = commands.audit_report(
            engine, since="30d", until=None, targets=[], fmt=fmt, output=output, out=io.StringIO(), verify=False
        )
        samples.append(time.perf_counter() - began)
        assert code == 0
    document = json.loads(output.read_text()) if fmt == "json" else None
    return {
        "median_s": statistics.median(samples),
        "max_s": max(samples),
        "bytes": output.stat().st_size,
        "pairs": len(document["pairs"]) if document else None,
    }


def run_child(mode: str, url: str, anchors: Path | None = None) -> dict[str, Any]:
    """Run one streaming command in a fresh process; its peak RSS is its own."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "bench.audit_scale", "--child", mode, "--url", url]
    command += ["--anchors", str(anchors)] if anchors else []
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=3600)
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    if result["exit"] != 0:
        raise RuntimeError(f"{mode} failed: {result['report']}")
    return result


LIST_CASES: list[tuple[str, dict[str, Any]]] = [
    ("--secret secret-042", {"secrets": ["secret-042"]}),
    (f"--secret {RARE_SECRET} (10 rows in 1M)", {"secrets": [RARE_SECRET]}),
    ("--secret (no such secret)", {"secrets": ["no-such-secret"]}),
    ("--target tenant-007", {"targets": ["tenant-007"]}),
    ("--event failed (1% of rows)", {"events": ["failed"]}),
    ("--actor rotator/0.1.0@rotator-1", {"actors": ["rotator/0.1.0@rotator-1"]}),
    ("--run run-012345", {"runs": ["run-012345"]}),
    ("--secret secret-042 --event failed", {"secrets": ["secret-042"], "events": ["failed"]}),
    ("--since 24h", {"since": "24h"}),
    ("--secret secret-042 --since 60d --until 30d", {"secrets": ["secret-042"], "since": "60d", "until": "30d"}),
    ("(no filter)", {}),
]


def time_list(engine: Engine, options: dict[str, Any], runs: int) -> dict[str, Any]:
    from service.audit import commands

    base: dict[str, Any] = {"secrets": [], "targets": [], "events": [], "actors": [], "runs": []}
    base.update(since=None, until=None, limit=100, fmt="jsonl")
    samples, lines = [], 0
    for _ in range(runs):
        out = io.StringIO()
        began = time.perf_counter()
        assert commands.audit_list(engine, out=out, err=io.StringIO(), **{**base, **options}) == 0
        samples.append((time.perf_counter() - began) * 1000)
        lines = out.getvalue().count("\n")
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {"median_ms": statistics.median(samples), "p95_ms": p95, "max_ms": samples[-1], "rows": lines}


def time_open_intents(engine: Engine, *, runs: int) -> dict[str, Any]:
    """What a starting worker pays to find intents without an outcome."""
    from service.audit.store import AuditStore

    samples, found = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        found = len(AuditStore(engine).open_intents())
        samples.append((time.perf_counter() - began) * 1000)
    return {"median_ms": statistics.median(samples), "found": found}


def plan_of_secret_query(engine: Engine) -> str:
    from service.audit.queries import AuditFilter, conditions

    query = (
        sa.select(audit_events)
        .where(*conditions(AuditFilter(secrets=["secret-042"])))
        .order_by(audit_events.c.seq.desc())
        .limit(100)
    )
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar_one()
    node = plan[0]["Plan"]
    while node.get("Plans") and node["Node Type"] == "Limit":
        node = node["Plans"][0]
    return f"{node['Node Type']} using {node.get('Index Name', '-')}"


@contextmanager
def database() -> Iterator[str]:
    """A fresh database URL (psycopg form) on the benchmark's server, dropped afterwards."""
    explicit = os.environ.get("ROTATOR_BENCH_DATABASE_URL")
    if explicit:
        yield from _fresh(explicit)
        return
    from service.sandbox.postgres import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        yield from _fresh(server.url)


def _fresh(admin_url: str) -> Iterator[str]:
    admin = make_url(admin_url)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from service.audit import migrate
    from service.audit.db import make_engine
    from service.config import DatabaseConfig

    results: dict[str, Any] = {"rows": args.rows, "small": args.small, "runs": args.runs}
    with database() as url:
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        engine = make_engine(DatabaseConfig(url=url, pool_size=2), password=None)
        migrate.upgrade(engine)
        loader = Loader(total=args.rows, start=datetime.now(UTC) - timedelta(days=90))
        results["load_small_s"] = load(plain, loader, args.small)
        results["baseline"] = run_child("baseline", url)
        results["verify_small"] = run_child("verify", url)
        results["export_small"] = run_child("export", url)
        results["load_rest_s"] = load(plain, loader, args.rows - args.small)
        with engine.connect() as conn:
            results["table_mb"] = conn.execute(
                sa.text("SELECT pg_total_relation_size('audit_events') / 1048576.0")
            ).scalar_one()
            results["server"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
        results["plan_secret"] = plan_of_secret_query(engine)
        results["list"] = {label: time_list(engine, options, args.runs) for label, options in LIST_CASES}
        results["open_intents"] = time_open_intents(engine, runs=3)
        results["verify_large"] = run_child("verify", url)
        results["export_large"] = run_child("export", url)
        with tempfile.TemporaryDirectory() as scratch:
            anchors = write_anchors(loader.heads, Path(scratch))
            results["anchors"] = len(loader.heads)
            results["verify_anchors_large"] = run_child("verify-anchors", url, anchors)
            results["export_tail"] = time_tail_export(engine, after_seq=loader.seq - TAIL, runs=args.runs)
            results["report_html"] = time_report(engine, Path(scratch), fmt="html", runs=3)
            results["report_json"] = time_report(engine, Path(scratch), fmt="json", runs=3)
        engine.dispose()
    return results


def print_table(results: dict[str, Any]) -> None:
    rows, small = results["rows"], results["small"]
    size = f"{results['table_mb']:.0f} MB with indexes"
    print(f"\naudit trail at scale: {rows:,} rows ({size}), PostgreSQL {results['server']}")
    loads = f"{small:,} rows {results['load_small_s']:.1f}s, the rest {results['load_rest_s']:.1f}s"
    print(f"load (COPY, hashed in Python): {loads}")
    print(f"plan of `audit list --secret X --limit 100`: {results['plan_secret']}\n")
    print(f"{'audit list ... --limit 100':<48} {'rows':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for label, t in results["list"].items():
        print(f"{label:<48} {t['rows']:>5} {t['median_ms']:>10.1f} {t['p95_ms']:>8.1f} {t['max_ms']:>8.1f}")
    base = results["baseline"]["maxrss_kb"] / 1024
    header = f"{'rows':>10} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12} {'over baseline':>14}"
    print(f"\n{'streaming, fresh process':<28} {header}")
    for label, key, count in (
        ("audit verify", "verify_small", small),
        ("audit verify", "verify_large", rows),
        ("audit export --format jsonl", "export_small", small),
        ("audit export --format jsonl", "export_large", rows),
        (f"verify --anchors ({results['anchors']:,})", "verify_anchors_large", rows),
    ):
        run = results[key]
        rss, rate = run["maxrss_kb"] / 1024, count / run["seconds"]
        print(f"{label:<28} {count:>10,} {run['seconds']:>8.1f} {rate:>9,.0f} {rss:>12.1f} {rss - base:>14.1f}")
    print(f"(baseline: a process that imports the service and runs one query: {base:.1f} MB)")
    print(f"open_intents() at {rows:,} rows: {results['open_intents']['median_ms']:.0f} ms median")
    tail = results["export_tail"]
    print(
        f"audit export --after-seq {rows - TAIL:,} ({tail['rows']:,} rows): "
        f"{tail['median_ms']:.1f} ms median, {tail['max_ms']:.1f} ms max (target < 50 ms)"
    )
    for fmt in ("html", "json"):
        run = results[f"report_{fmt}"]
        print(
            f"audit report --since 30d --no-verify --format {fmt}: {run['median_s']:.2f} s median, "
            f"{run['max_s']:.2f} s max, {run['bytes'] / 1024:.0f} KiB (target < 5 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--child", choices=["verify", "verify-anchors", "export", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--anchors", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.anchors)
        return
    results = measure(args)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    results["compared"] = (
        "audit list latency per filter at full size (LIMIT 100, newest first); verify/export rows/s and peak RSS "
        "of a fresh process at --small vs --rows rows (bounded memory: RSS should not grow with rows)"
    )
    print_table(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"audit_scale-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
