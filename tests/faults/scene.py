"""``FaultScene``: an end-to-end scene whose servers can fail, and the invariants checked after each case.

It extends ``tests/e2e/scene.py``'s ``Scene``: the AI Core emulator is a process
(``EmulatorProcess``), the workers reach OpenBao through a ``Proxy`` that can be cut,
PostgreSQL is the session's embedded server that a case can stop and start on the same
port and data directory, and every password written to Vault is a sentinel searched for
in everything the processes left behind. ``check()`` runs the invariants
(``invariants.py``) and ``rotator audit verify``, and records one row of the table the
suite prints at its end.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from service.audit.grants import grants_sql
from service.sandbox.openbao import OpenBaoDevServer
from service.sandbox.postgres import EmbeddedPostgres, binaries
from tests.e2e.processes import WorkerProcess, eventually
from tests.e2e.scene import VAULT_TOKEN_ENV, Completed, Scene
from tests.faults import invariants
from tests.faults.emulator import EmulatorProcess
from tests.faults.proxy import Proxy

LEASE_TTL = 5.0  # seconds: every intent must be closed this long after it was written (plus declared outages)
EVERY = "1s"
USERNAME = "robot-faults"


@dataclass
class CaseRecord:
    """One row of the suite's table, filled in as the case goes."""

    fault: str
    invariants: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.invariants:
            return "not reached"
        return " ".join(f"{name}:{verdict}" for name, verdict in self.invariants.items())


@dataclass
class FaultScene(Scene):
    """A scene with fault controls; build it with the ``case`` fixture."""

    pg: EmbeddedPostgres | None = None
    bao: OpenBaoDevServer | None = None
    unseal_key: str = ""
    proxy: Proxy | None = None
    aicore: EmulatorProcess | None = None
    record: CaseRecord = field(default_factory=lambda: CaseRecord(fault=""))
    lease_ttl: float = LEASE_TTL
    outage: float = 0.0  # seconds a case keeps a dependency away: intents may take this much longer
    credentials: list[tuple[str, str]] = field(default_factory=list)
    tenants_of: dict[str, set[str]] = field(default_factory=dict)
    checked: bool = False
    app_role: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.every = EVERY
        self.set(
            "rotation",
            lease_ttl=f"{self.lease_ttl:g}s",
            shutdown_grace="8s",
            failure_backoff="1s",
            failure_backoff_max="3s",
            reconcile_every="1s",  # well under the lease TTL: an orphaned intent closes within one TTL
            retry={"attempts": 3, "base_delay": "200ms", "max_delay": "1s", "total": "8s"},
        )

    # --- arranging ------------------------------------------------------------------

    def fault(self, description: str) -> None:
        """Name the fault this case injects (the table's second column)."""
        self.record.fault = description

    def add_tenant(self, name: str, *, editor: bool = True, client_secret: str | None = None, **target: Any) -> None:
        super().add_tenant(name, editor=editor, client_secret=client_secret or f"SENTINEL-{secrets.token_hex(12)}")
        self.targets[name].update({"timeout": "3s", **target})
        self.tenants_of.setdefault(name, set()).add(name)
        self.credentials.append(("", str(self.emulator.service_key(name)["clientsecret"])))

    def repoint(self, target: str, *, to: str) -> None:
        """Write the service key of tenant ``to`` into the file of ``target`` (another AI Core instance)."""
        path = Path(self.targets[target]["service_key"]["file"])
        path.write_text(json.dumps(self.emulator.service_key(to)))
        self.tenants_of.setdefault(target, set()).add(to)

    def put(self, path: str, *, username: str = USERNAME, password: str | None = None) -> str:
        value = password or f"SENTINEL-{secrets.token_urlsafe(18)}"
        self.credentials.append((username, value))
        return super().put(path, username=username, password=value)

    # --- faults -----------------------------------------------------------------------

    def stop_postgres(self) -> None:
        assert self.pg is not None
        self.pg.stop()

    def start_postgres(self) -> None:
        assert self.pg is not None
        if not _running(self.pg):
            self.pg.start()
            if self._engine is not None:
                self._engine.dispose()  # its pooled connections died with the server

    def use_app_role(self) -> str:
        """Workers connect as a fresh login role holding ``rotator db grants``' privileges only; its name."""
        role = f"app_{secrets.token_hex(6)}"
        statements = [
            line
            for line in grants_sql(app_role=role, reader_role=f"{role}_reader").splitlines()
            if line and not line.startswith("--") and line not in ("BEGIN;", "COMMIT;")
        ]
        with self.engine.begin() as conn:
            conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(sa.text(f'CREATE ROLE "{role}_reader"'))
            for statement in statements:
                conn.execute(sa.text(statement))
        self.app_role = role
        self.cleanups.append(self._drop_roles)
        return role

    def _drop_roles(self) -> None:
        with contextlib.suppress(sa.exc.SQLAlchemyError), self.engine.begin() as conn:
            for name in (self.app_role, f"{self.app_role}_reader"):
                conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
                conn.execute(sa.text(f'DROP ROLE "{name}"'))

    def grant(self, sql: str) -> None:
        """Run a GRANT / REVOKE (``{role}`` is the app role) as the superuser."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql.format(role=f'"{self.app_role}"')))

    @contextlib.contextmanager
    def postgres_down(self, seconds: float) -> Iterator[None]:
        """PostgreSQL stopped for ``seconds`` (the block runs while it is down), then back on the same port."""
        self.outage += seconds
        self.stop_postgres()
        started = time.monotonic()
        try:
            yield
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        finally:
            self.start_postgres()

    def vault_down(self) -> None:
        assert self.proxy is not None
        self.proxy.down()

    def vault_up(self) -> None:
        assert self.proxy is not None
        self.proxy.up()

    def seal(self) -> None:
        self.root.sys.seal()

    def unseal(self) -> None:
        self.root.sys.submit_unseal_key(self.unseal_key)

    def document(self) -> dict[str, Any]:
        document = super().document()
        if self.app_role:
            url = make_url(document["database"]["url"]).set(username=self.app_role)
            document["database"]["url"] = url.render_as_string(hide_password=False)
        return document

    # --- reading back -------------------------------------------------------------------

    def event_rows(self) -> list[invariants.Row]:
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.text(
                    "SELECT seq, recorded_at, event, target, secret, intent_seq, actor, error_code"
                    " FROM audit_events ORDER BY seq"
                )
            )
            return [invariants.as_row(row._mapping) for row in result]

    def events(self) -> list[str]:
        return [row.event for row in self.event_rows()]

    def live_workers(self) -> list[WorkerProcess]:
        return [worker for worker in self.workers if worker.process.poll() is None]

    def pg_dump(self) -> str:
        url = make_url(self.database_url)
        command = [str(binaries() / "pg_dump"), "-h", "127.0.0.1", "-p", str(url.port), "-U", "postgres"]
        result = subprocess.run(
            [*command, "-d", str(url.database)], capture_output=True, text=True, check=False, timeout=60
        )
        assert result.returncode == 0, f"pg_dump failed: {result.stderr}"
        return result.stdout

    # --- the invariants -------------------------------------------------------------------

    def check(self, *, expect_writes: bool = True) -> None:
        """Check every invariant, record the verdicts for the table, and fail naming what broke."""
        self.checked = True
        self.start_postgres()
        within = self.lease_ttl + self.outage + 3.0
        if self.live_workers():
            with contextlib.suppress(AssertionError):
                eventually(lambda: not self.open_intents(), timeout=within, what="every intent closed")
        verify = self._start("audit", "verify")  # runs while the workers are read and stopped
        texts = self._texts()
        verified = self._finish(verify)
        texts[f"rotator audit verify (#{len(self.completed) - 1})"] = verified.stdout + verified.stderr
        rows = self.event_rows()
        assert self.aicore is not None
        requests = self.aicore.inspect.requests()
        problems: dict[str, list[str]] = {}
        problems["intent-first"] = invariants.no_write_without_intent(rows, requests, self.tenants_of)
        resolved, longest = invariants.intents_resolved(rows, within=within)
        problems["resolved"] = resolved
        problems["once"] = invariants.written_once(rows, requests, self.tenants_of)
        problems["verify"] = [] if verified.code == 0 else [f"audit verify exited {verified.code}: {verified.stdout}"]
        problems["no-leak"] = invariants.no_sentinel(texts, self._sentinels())
        if expect_writes and not any(r.is_write for r in requests):
            problems["intent-first"].append("no write reached AI Core: the case proved nothing")
        for name, found in problems.items():
            verdict = "ok" if not found else "FAIL"
            self.record.invariants[name] = f"{verdict}({longest:.1f}s)" if name == "resolved" else verdict
        broken = [f"{name}: {problem}" for name, found in problems.items() for problem in found]
        trail = "\n".join(f"  {row}" for row in rows)
        assert not broken, "invariants broken:\n" + "\n".join(broken) + f"\nthe trail:\n{trail}"

    def _start(self, *args: str) -> tuple[list[str], subprocess.Popen[str]]:
        command = self.command(*args, "--log-format", "json")
        process = subprocess.Popen(
            command, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return list(args), process

    def _finish(self, started: tuple[list[str], subprocess.Popen[str]]) -> Completed:
        args, process = started
        stdout, stderr = process.communicate(timeout=60)
        completed = Completed(args=args, code=process.returncode, stdout=stdout, stderr=stderr)
        self.completed.append(completed)
        return completed

    def _sentinels(self) -> set[str]:
        return invariants.leak_forms(self.credentials) | {self.vault.token, self.env[VAULT_TOKEN_ENV]}

    def _texts(self) -> dict[str, str]:
        texts: dict[str, str] = {}
        for worker in self.live_workers():
            with contextlib.suppress(AssertionError, httpx.HTTPError):
                base = worker.http_url(timeout=2)
                for path in ("/metrics", "/status", "/readyz", "/livez"):
                    texts[f"{worker.name} {path}"] = httpx.get(base + path, timeout=5).text
        for worker in self.live_workers():  # all at once: their shutdowns overlap
            worker.send(signal.SIGTERM)
        for worker in self.workers:
            with contextlib.suppress(AssertionError):
                worker.wait(timeout=20)
            worker.kill()
            texts[f"{worker.name} log"] = worker.text()
        for index, completed in enumerate(self.completed):
            texts[f"rotator {' '.join(completed.args)} (#{index})"] = completed.stdout + completed.stderr
        texts["pg_dump"] = self.pg_dump()
        assert self.aicore is not None
        texts["emulator output and request log"] = self.aicore.text()
        return texts


def _running(pg: EmbeddedPostgres) -> bool:
    return pg._process is not None and pg._process.poll() is None


def unseal_key(bao: OpenBaoDevServer) -> str:
    """The dev server's unseal key, from the banner it logs at start."""
    for line in bao.log_path.read_text().splitlines():
        if line.strip().startswith("Unseal Key:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("the OpenBao dev server logged no unseal key")
