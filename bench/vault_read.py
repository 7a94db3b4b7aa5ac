"""CPU per `VaultSource.read` (KV v2, its own path per read): requests' session against our urllib3 transport.

Run from the repo root:  python -m bench.vault_read [--reads 2000] [--threads 1,16] [--rounds 3] [--out DIR]

Against a real OpenBao dev server (``service.sandbox.openbao``, as bench/once.py and
tests/harness.py start it), --reads KV v2 secrets at ``secret/bench/reg-NNNN`` are read once
each through ``VaultSource.read`` (a logged-in ``VaultSession``, the ``vault.read`` log line
written as JSON to /dev/null, as in production) by one thread or by N threads sharing the
session, with two HTTP paths under the same hvac client code:

- ``requests``: hvac's default ``JSONAdapter`` over the ``requests.Session`` that
  ``service/vault/session.py`` built before this change (``_requests_session`` below: the
  environment read once, ``trust_env`` off, one ``HTTPAdapter`` with a pool per reader);
- ``urllib3``: ``service.vault.session.vault_client``, hvac over ``VaultTransport``
  (``service/vault/transport.py``), one urllib3 pool.

CPU is this process's ``time.process_time()`` (every thread; OpenBao is another process)
over the reads, divided by the reads. Each (path, threads) is measured --rounds times,
alternating the two paths, and the table gives the median and the range. Writes JSON to
bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import requests
import requests.adapters
import requests.utils

from bench.sweep import seed_sources
from service import logs
from service.config import SecretRef, SourceConfig, VaultAuthConfig, VaultConfig
from service.vault import VaultSession, VaultSource
from service.vault.session import vault_client

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TOKEN_ENV = "BENCH_VAULT_TOKEN"  # noqa: S105 (the name of a variable, not a token)
PATHS = ("requests", "urllib3")


def _requests_session(address: str, *, max_connections: int) -> requests.Session:
    """The session service/vault/session.py's ``_pooled`` built before the urllib3 transport (verify: default)."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(address)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.auth = requests.utils.get_netrc_auth(address)
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max_connections)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def client_for(path: str, config: VaultConfig, *, max_connections: int) -> hvac.Client:
    """The hvac client of one HTTP path: requests' session (before) or our urllib3 transport (after)."""
    if path == "requests":
        session = _requests_session(config.address, max_connections=max_connections)
        return hvac.Client(url=config.address, timeout=config.timeout.total_seconds(), session=session)  # type: ignore[arg-type]  # the stub says int
    return vault_client(config, max_connections=max_connections)


def timed_reads(path: str, config: VaultConfig, sources: list[SourceConfig], *, threads: int) -> dict[str, Any]:
    """CPU (all threads of this process) and wall time of reading every source once, on ``threads`` threads."""
    session = VaultSession(
        client=client_for(path, config, max_connections=threads),
        auth=config.auth,
        read_local=lambda ref: os.environ[ref.env or ""],
    )
    session.login()
    reader = VaultSource(session=session, clock=lambda: datetime.now(UTC))
    try:
        cpu, wall = _run(reader.read, sources, threads=threads)
    finally:
        session.close()
    return {"path": path, "threads": threads, "cpu_us_per_read": cpu / len(sources) * 1e6, "wall_s": wall}


def _run(read: Callable[[SourceConfig], Any], sources: list[SourceConfig], *, threads: int) -> tuple[float, float]:
    if threads == 1:
        cpu, wall = time.process_time(), time.perf_counter()
        for source in sources:
            read(source)
        return time.process_time() - cpu, time.perf_counter() - wall
    start = threading.Barrier(threads + 1)
    chunks = [sources[index::threads] for index in range(threads)]

    def work(chunk: list[SourceConfig]) -> None:
        start.wait()
        for source in chunk:
            read(source)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(work, chunk) for chunk in chunks]
        start.wait()
        cpu, wall = time.process_time(), time.perf_counter()
        for future in futures:
            future.result()
        return time.process_time() - cpu, time.perf_counter() - wall


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from service.sandbox.openbao import OpenBaoDevServer

    with OpenBaoDevServer() as bao, Path(os.devnull).open("w") as sink:
        seed_sources(bao.address, bao.root_token, args.reads)
        os.environ[TOKEN_ENV] = bao.root_token
        logs.configure("info", "json", stream=sink)
        config = VaultConfig(address=bao.address, auth=VaultAuthConfig(method="token", token=SecretRef(env=TOKEN_ENV)))
        sources = [SourceConfig(mount="secret", path=f"bench/reg-{index:04d}") for index in range(args.reads)]
        for threads in args.threads:
            timed_reads("urllib3", config, sources[:50], threads=threads)  # warm: imports, first connections
            timed_reads("requests", config, sources[:50], threads=threads)
        samples = [
            timed_reads(path, config, sources, threads=threads)
            for _ in range(args.rounds)
            for threads in args.threads
            for path in PATHS
        ]
    return {"reads": args.reads, "rounds": args.rounds, "samples": samples, "summary": summary(samples)}


def summary(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (threads, path): the median, lowest and highest CPU per read, and the change against requests."""
    rows = []
    for threads in sorted({sample["threads"] for sample in samples}):
        medians = {}
        for path in PATHS:
            cpu = [s["cpu_us_per_read"] for s in samples if s["threads"] == threads and s["path"] == path]
            medians[path] = statistics.median(cpu)
            rows.append(
                {"threads": threads, "path": path, "median_us": medians[path], "low_us": min(cpu), "high_us": max(cpu)}
            )
        rows[-1]["change"] = medians["urllib3"] / medians["requests"] - 1
    return rows


def print_table(results: dict[str, Any]) -> None:
    print(
        f"\nVaultSource.read, KV v2, own path per read: {results['reads']} reads per sample, "
        f"{results['rounds']} rounds alternating; CPU of this process (all threads) per read\n"
    )
    print(f"{'threads':>7}  {'HTTP path':<34} {'median us':>9} {'range us':>13} {'change':>7}")
    labels = {"requests": "hvac + requests.Session (before)", "urllib3": "hvac + VaultTransport (urllib3)"}
    for row in results["summary"]:
        change = f"{row['change']:+.0%}" if "change" in row else ""
        span = f"{row['low_us']:.0f}-{row['high_us']:.0f}"
        print(f"{row['threads']:>7}  {labels[row['path']]:<34} {row['median_us']:>9.0f} {span:>13} {change:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="secrets, each with its own KV v2 path, read once")
    parser.add_argument("--threads", default="1,16", help="comma-separated thread counts (default: 1,16)")
    parser.add_argument("--rounds", type=int, default=3, help="samples of each (path, threads), alternating")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes (default: bench/results)")
    args = parser.parse_args()
    args.threads = [int(count) for count in args.threads.split(",")]
    results = measure(args)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    results["compared"] = (
        "CPU per VaultSource.read (KV v2, own path per read) through hvac over requests.Session (the session "
        "service/vault/session.py built before) against hvac over VaultTransport (one urllib3 pool)"
    )
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"vault-read-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:4]}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
