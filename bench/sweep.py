"""One sweep at scale (issue 6): wall time against the bound it can't beat, and CPU per rotation.

Run from the repo root:  python -m bench.sweep [--tenants 20] [--secrets-per-tenant 50] [--latency-ms 20]
                         [--sources 50] [--per-target-concurrency N] [--max-concurrency N] [--force] [--jobs]
                         [--quick] [--out DIR] [--log FILE]

It starts its own embedded PostgreSQL, an OpenBao dev server and the AI Core emulator as a
separate process (its CPU is not ours; every request waits --latency-ms), pre-creates
--secrets-per-tenant secrets on each of --tenants tenants (quota >= 50), seeds --sources KV v2
sources in Vault, migrates a fresh database, writes a configuration and builds the real
``Rotator`` through ``service.app.App`` from it: what is measured is what production runs,
logging (JSON lines, to a file) included. Then it runs
- (a) a first sweep: every credential is new, one PATCH per (target, secret);
- (b) a second sweep: nothing changed, no PATCH;
- (c) with --force, a forced sweep (`rotator once --force`): one PATCH each again;
- with --jobs, the way `rotator run` runs them, a day later (an injected clock) with every source
  changed in Vault: (d) its start-up catch-up (``Worker.catch_up_request``), and (e), a day later
  again, one sweep per secret, each a scheduler job, on the scheduler's JOB_WORKERS threads (how
  scheduled ticks run; they are spread out by their phases, so this is the worst case).

Secrets are distinct per tenant (`reg-t03-s017` on tenant-03 only), listed tenant by tenant as
a configuration grouped by tenant would list them. By default they share --secrets-per-tenant
Vault sources (secret s017 of every tenant reads `bench/reg-017`, as one registry token is
pushed to many tenants): the issue is about the AI Core side, and one Vault read per source
per sweep is the design. `--sources 1000` gives every secret its own source, to see what
Vault reads cost.

The bound of a sweep that writes: the slowest tenant's secrets x latency / its concurrency,
plus one token fetch (one latency). The total cap (max_concurrency) gives a second bound:
all writes x latency / max_concurrency. CPU is this process's (all threads), from
``time.process_time()``. Prints a table and writes JSON to bench/results/ (or --out).
To see where the time goes: ``py-spy record --gil -r 250 -- python -m bench.sweep`` (py-spy is
on PyPI; --gil samples only the thread holding the GIL, i.e. where the CPU goes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from bench.audit_scale import database  # a fresh database on an embedded PostgreSQL, or the named server

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PLACEHOLDER = json.dumps({"auths": {"registry.bench.example": {"auth": "cGxhY2Vob2xkZXI6eA=="}}})
REGISTRY = "registry.bench.example"
JOB_WORKERS = 8  # service/scheduler.py: APScheduler's ThreadPoolExecutor(max_workers=8)
JOBS_D = "(d) run: start-up catch-up"
JOBS_E = f"(e) run: 1 sweep/secret, {JOB_WORKERS} jobs"


@dataclass(frozen=True)
class Layout:
    """Which secrets live on which tenant, and which source feeds each."""

    tenants: int
    per_tenant: int
    sources: int

    def tenant(self, t: int) -> str:
        return f"tenant-{t:02d}"

    def secret(self, t: int, s: int) -> str:
        return f"reg-t{t:02d}-s{s:03d}"

    def source(self, t: int, s: int) -> str:
        return f"bench/reg-{(t * self.per_tenant + s) % self.sources:04d}"

    def pairs(self) -> Iterator[tuple[int, int]]:
        """Tenant by tenant, as a configuration grouped by tenant lists them."""
        for t in range(self.tenants):
            for s in range(self.per_tenant):
                yield t, s

    @property
    def rotations(self) -> int:
        return self.tenants * self.per_tenant


# --- the emulator, in its own process ---------------------------------------------------


def emulator_child(*, tenants_file: str, key_dir: str, latency_ms: float) -> None:
    """In the child: serve tenants from the file; answer `stats` on stdin with a JSON line; stop at EOF."""
    from service.sandbox.aicore_emulator import AICoreEmulator
    from service.sandbox.aicore_emulator.process import add_tenant, load_tenants, write_service_keys

    with AICoreEmulator(latency=latency_ms / 1000) as emulator:
        keys = {spec["name"]: add_tenant(emulator, spec) for spec in load_tenants(Path(tenants_file))}
        write_service_keys(Path(key_dir), keys)
        _answer({"event": "emulator.ready", "url": emulator.url})
        for line in sys.stdin:
            if line.strip() == "stats":
                _answer(_stats(emulator, sorted(keys)))


def _stats(emulator: Any, tenants: list[str]) -> dict[str, Any]:
    inspect = emulator.inspect
    writes = Counter(write.method for tenant in tenants for write in inspect.writes(tenant))
    return {
        "patch": writes["PATCH"],
        "post": writes["POST"],
        "token": inspect.request_count(endpoint="token"),
        "requests": inspect.request_count(),
        "peak_in_flight": inspect.peak_in_flight(),
        "connections": inspect.connection_count(),
        "cpu_s": time.process_time(),
    }


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class EmulatorProcess:
    """The parent's handle on the emulator child: start, ask for stats, stop."""

    def __init__(self, *, tenants_file: Path, key_dir: Path, latency_ms: float) -> None:
        command = [sys.executable, "-m", "bench.sweep", "--emulator-child", "--tenants-file", str(tenants_file)]
        command += ["--key-dir", str(key_dir), "--latency-ms", str(latency_ms)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._process = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.url = str(self._read()["url"])

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator exited with code {self._process.wait(10)}")
        return dict(json.loads(line))

    def stats(self) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write("stats\n")
        self._process.stdin.flush()
        return self._read()

    def stop(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


# --- the scene ----------------------------------------------------------------------------


def write_tenants(path: Path, layout: Layout) -> None:
    """The emulator's tenants file: every secret pre-created (names can't change), quota >= 50."""
    tenants = [
        {
            "name": layout.tenant(t),
            "quota": max(50, layout.per_tenant),
            "secrets": {layout.secret(t, s): PLACEHOLDER for s in range(layout.per_tenant)},
        }
        for t in range(layout.tenants)
    ]
    path.write_text(json.dumps({"tenants": tenants}))


def seed_vault(address: str, token: str, layout: Layout) -> None:  # again: a new KV version of every source
    """One KV v2 secret per source, each with its own username and token."""
    seed_sources(address, token, layout.sources)


def seed_sources(address: str, token: str, count: int) -> None:
    """KV v2 paths bench/reg-0000 ...: one username and password each (bench/once.py seeds the same)."""
    import hvac

    client = hvac.Client(url=address, token=token)
    try:
        for index in range(count):
            client.secrets.kv.v2.create_or_update_secret(
                path=f"bench/reg-{index:04d}",
                secret={"username": f"robot-{index}", "password": secrets.token_urlsafe(24)},
                mount_point="secret",
            )
    finally:
        client.adapter.close()


def write_config(path: Path, *, layout: Layout, vault: str, database: str, key_dir: Path, args: Any) -> None:
    rotation = [f"{name} = {value}" for name, value in _rotation_overrides(args).items()]
    text = [
        'instance = "bench"',
        "[vault]",
        f'address = "{vault}"',
        'auth = {method = "token", token = {env = "BENCH_VAULT_TOKEN"}}',
        "[database]",
        f'url = "{database}"',
        "[audit]",
        'key = {env = "BENCH_AUDIT_KEY"}',
        'key_id = "bench1"',
        "[rotation]",
        *rotation,
        "[http]",
        "enabled = false",
        "[defaults.schedule]",
        'every = "6h"',
    ]
    path.write_text("\n".join([*text, *world_toml(layout, key_dir=key_dir)]) + "\n")


def world_toml(layout: Layout, *, key_dir: Path) -> list[str]:
    """The [targets.*] and [[secrets]] lines of a layout (bench/once.py writes the same world)."""
    text: list[str] = []
    for t in range(layout.tenants):
        text += [f"[targets.{layout.tenant(t)}]", f'service_key = {{file = "{key_dir / layout.tenant(t)}.json"}}']
    for t, s in layout.pairs():
        text += [
            "[[secrets]]",
            f'name = "{layout.secret(t, s)}"',
            f'targets = ["{layout.tenant(t)}"]',
            f'registries = ["{REGISTRY}"]',
            f'source = {{path = "{layout.source(t, s)}"}}',
        ]
    return text


def _rotation_overrides(args: Any) -> dict[str, int]:
    chosen = {"max_concurrency": args.max_concurrency, "per_target_concurrency": args.per_target_concurrency}
    return {name: value for name, value in chosen.items() if value is not None}


# --- measuring ------------------------------------------------------------------------------


def bounds(settings: Any, layout: Layout, latency: float) -> dict[str, float]:
    """The floor of a sweep that writes everything: per target, and under the total cap."""
    rotation = settings.rotation
    slowest = max(
        layout.per_tenant / (settings.targets[name].max_concurrency or rotation.per_target_concurrency)
        for name in settings.targets
    )
    return {
        "bound_s": slowest * latency + latency,
        "cap_bound_s": layout.rotations * latency / rotation.max_concurrency + latency,
    }


def timed_sweep(app: Any, emulator: EmulatorProcess, *, force: bool, label: str) -> dict[str, Any]:
    """One sweep of every secret, as `rotator once` runs it: wall, CPU, outcomes, emulator counts."""
    from service.model import Trigger
    from service.rotation import SweepRequest

    request = SweepRequest(secrets=app.settings.specs(), trigger=Trigger.MANUAL, force=force)
    before, usage = emulator.stats(), resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = time.process_time(), time.perf_counter()
    report = app.rotator.sweep(request)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after_usage = resource.getrusage(resource.RUSAGE_SELF)
    after = emulator.stats()
    delta = {key: after[key] - before[key] for key in ("patch", "post", "token", "requests", "cpu_s")}
    return {
        "label": label,
        "wall_s": wall,
        "cpu_s": cpu,
        "user_s": after_usage.ru_utime - usage.ru_utime,
        "system_s": after_usage.ru_stime - usage.ru_stime,
        "context_switches": (after_usage.ru_nvcsw + after_usage.ru_nivcsw) - (usage.ru_nvcsw + usage.ru_nivcsw),
        "rotations": len(report.results),
        "outcomes": report.counts(),
        "emulator": delta | {"peak_in_flight_so_far": after["peak_in_flight"], "connections": after["connections"]},
    }


class ShiftedClock:
    """The app's clock: now, moved forward on demand (so schedules fall due without waiting)."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


def catch_up_requests(app: Any) -> list[Any]:
    """What `rotator run` sweeps at start-up."""
    from service.worker import Worker

    request = Worker(app).catch_up_request()
    return [request] if request is not None else []


def tick_requests(app: Any) -> list[Any]:
    """What `rotator run`'s scheduled ticks sweep: one secret each, due now."""
    from service.model import Trigger
    from service.rotation import SweepRequest

    due = app.clock()
    return [SweepRequest(secrets=[secret], trigger=Trigger.SCHEDULE, due_by=due) for secret in app.settings.specs()]


def timed_jobs(app: Any, emulator: EmulatorProcess, requests: list[Any], *, label: str) -> dict[str, Any]:
    """Run sweep requests as scheduler jobs: JOB_WORKERS at a time."""
    from concurrent.futures import ThreadPoolExecutor

    before = emulator.stats()
    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=JOB_WORKERS, thread_name_prefix="job") as jobs:
        reports = list(jobs.map(app.rotator.sweep, requests))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = emulator.stats()
    outcomes: Counter[str] = Counter()
    for report in reports:
        outcomes.update(report.counts())
    delta = {key: after[key] - before[key] for key in ("patch", "post", "token", "requests", "cpu_s")}
    return {
        "label": label,
        "wall_s": wall,
        "cpu_s": cpu,
        "rotations": sum(len(report.results) for report in reports),
        "outcomes": dict(outcomes),
        "emulator": delta | {"peak_in_flight_so_far": after["peak_in_flight"], "connections": after["connections"]},
    }


def check_chain(app: Any) -> bool:
    """`rotator audit verify` over the whole trail: the batching kept one unbroken chain."""
    from service.audit import commands

    return commands.audit_verify(app.engine, anchor=None, out=io.StringIO()) == 0


def measure(args: argparse.Namespace, layout: Layout, log_stream: IO[str]) -> dict[str, Any]:
    from service import logs
    from service.app import App
    from service.audit import migrate
    from service.config import load_settings
    from service.sandbox.openbao import OpenBaoDevServer

    logs.configure("info", "json", stream=log_stream)
    latency = args.latency_ms / 1000
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rotator-bench-")))
        write_tenants(work / "tenants.json", layout)
        emulator = EmulatorProcess(
            tenants_file=work / "tenants.json", key_dir=work / "keys", latency_ms=args.latency_ms
        )
        stack.callback(emulator.stop)
        bao = stack.enter_context(OpenBaoDevServer())
        url = stack.enter_context(database())
        seed_vault(bao.address, bao.root_token, layout)
        os.environ |= {"BENCH_VAULT_TOKEN": bao.root_token, "BENCH_AUDIT_KEY": secrets.token_hex(32)}
        config = work / "rotator.toml"
        write_config(config, layout=layout, vault=bao.address, database=url, key_dir=work / "keys", args=args)
        clock = ShiftedClock()
        app = stack.enter_context(App(load_settings(config), clock=clock))
        migrate.upgrade(app.engine)
        app.rotator.recover(app.settings.spec_pairs())  # as `rotator once` does
        sweeps = [timed_sweep(app, emulator, force=False, label="(a) first: every credential new")]
        sweeps.append(timed_sweep(app, emulator, force=False, label="(b) second: nothing changed"))
        if args.force:
            sweeps.append(timed_sweep(app, emulator, force=True, label="(c) forced: --force"))
        for label, plan in ((JOBS_D, catch_up_requests), (JOBS_E, tick_requests)) if args.jobs else ():
            clock.shift += timedelta(days=1)
            seed_vault(bao.address, bao.root_token, layout)
            sweeps.append(timed_jobs(app, emulator, plan(app), label=label))
        rotation = app.settings.rotation
        return {
            "layout": {"tenants": layout.tenants, "secrets_per_tenant": layout.per_tenant, "sources": layout.sources},
            "latency_ms": args.latency_ms,
            "max_concurrency": rotation.max_concurrency,
            "per_target_concurrency": rotation.per_target_concurrency,
            "database_pool_size": app.settings.database.pool_size,
            **bounds(app.settings, layout, latency),
            "sweeps": sweeps,
            "chain_verified": check_chain(app),
        }


def print_table(results: dict[str, Any]) -> None:
    shape = results["layout"]
    print(
        f"\nsweep: {shape['tenants']} tenants x {shape['secrets_per_tenant']} secrets,"
        f" {shape['sources']} Vault sources,"
        f" AI Core latency {results['latency_ms']:g} ms; max_concurrency {results['max_concurrency']},"
        f" per_target_concurrency {results['per_target_concurrency']}"
    )
    print(
        f"bound (slowest tenant's secrets x latency / its concurrency + a token fetch): {results['bound_s']:.3f}s;"
        f" under the total cap (writes x latency / max_concurrency + a token fetch): {results['cap_bound_s']:.3f}s\n"
    )
    header = f"{'sweep':<34} {'PATCH':>6} {'wall s':>7} {'bound s':>8} {'ratio':>6} {'CPU s':>6} {'CPU ms/rot':>10}"
    print(header + f" {'emu CPU s':>9}  outcomes")
    for sweep in results["sweeps"]:
        patches = sweep["emulator"]["patch"]
        bound = f"{results['bound_s']:>8.3f}" if patches else f"{'-':>8}"
        ratio = f"{sweep['wall_s'] / results['bound_s']:6.1f}" if patches else f"{'-':>6}"
        per_rotation = 1000 * sweep["cpu_s"] / max(sweep["rotations"], 1)
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(sweep["outcomes"].items()))
        print(
            f"{sweep['label']:<34} {patches:>6} {sweep['wall_s']:>7.3f} {bound} {ratio}"
            f" {sweep['cpu_s']:>6.2f} {per_rotation:>10.2f} {sweep['emulator']['cpu_s']:>9.2f}  {outcomes}"
        )
    print(f"\naudit chain verified after the sweeps: {results['chain_verified']}")


def healthy(results: dict[str, Any]) -> bool:
    """Every sweep did what it should: (a) and (c) applied everything, (b) nothing; the chain verifies."""
    expected = {"applied": results["layout"]["tenants"] * results["layout"]["secrets_per_tenant"]}
    ok = results["chain_verified"]
    for sweep in results["sweeps"]:
        writes = sweep["label"].startswith(("(a)", "(c)", "(d)", "(e)"))
        want = expected if writes else {"unchanged": expected["applied"]}
        ok &= sweep["outcomes"] == want and sweep["emulator"]["patch"] == (expected["applied"] if writes else 0)
    return bool(ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--secrets-per-tenant", type=int, default=50)
    parser.add_argument("--sources", type=int, help="Vault sources shared by the secrets (default: secrets per tenant)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--per-target-concurrency", type=int, help="default: the service's default")
    parser.add_argument("--max-concurrency", type=int, help="default: the service's default")
    parser.add_argument("--force", action="store_true", help="also run a forced sweep")
    parser.add_argument("--jobs", action="store_true", help="also run the secrets as `rotator run`'s jobs would")
    parser.add_argument("--quick", action="store_true", help="a small run: 4 tenants x 10 secrets")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes (default: bench/results)")
    parser.add_argument("--log", type=Path, help="keep the rotator's JSON log lines here (default: discarded)")
    parser.add_argument("--emulator-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tenants-file", help=argparse.SUPPRESS)
    parser.add_argument("--key-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emulator_child:
        emulator_child(tenants_file=args.tenants_file, key_dir=args.key_dir, latency_ms=args.latency_ms)
        return
    if args.quick:
        args.tenants, args.secrets_per_tenant = 4, 10
    layout = Layout(args.tenants, args.secrets_per_tenant, args.sources or args.secrets_per_tenant)
    with args.log.open("w") if args.log else Path(os.devnull).open("w") as log_stream:
        results = measure(args, layout, log_stream)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    results["compared"] = (
        "wall time of one sweep of every (target, secret) through the real Rotator against the bound a perfect "
        "scheduler could reach (slowest tenant's secrets x latency / per-target concurrency + one token fetch); "
        "CPU seconds of this process per rotation; PATCHes counted by the emulator"
    )
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sweep-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:4]}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {path}")
    if not healthy(results):
        raise SystemExit("some rotation did not come out as expected (see the outcomes above)")


if __name__ == "__main__":
    main()
