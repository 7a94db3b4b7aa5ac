"""The world one end-to-end test runs in: its own database, KV mount, AI Core tenants and config.

``Scene`` arranges the real servers (the session's PostgreSQL and OpenBao, an in-process
AI Core emulator), writes the TOML configuration the ``rotator`` processes read, runs
``rotator`` commands and workers as processes, and reads back what they did: the audit
trail (through ``service.audit``), the emulator's writes and stored values.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from service.audit.output import as_json
from service.audit.queries import AuditFilter, streamed
from service.audit.store import AuditStore
from service.config import load_settings
from service.model import AuditRecord
from service.sandbox.aicore_emulator import AICoreEmulator
from tests.e2e.processes import WorkerProcess
from tests.e2e.tomlwriter import to_toml
from tests.harness import VaultServer

REPO = Path(__file__).resolve().parents[2]
KEY_ID = "e2e1"
REGISTRY = "registry.e2e.example"
PLACEHOLDER = json.dumps({"auths": {REGISTRY: {"auth": "cGxhY2Vob2xkZXI6eA=="}}})
AUDIT_KEY_ENV, VAULT_TOKEN_ENV, DB_PASSWORD_ENV = "E2E_AUDIT_KEY", "E2E_VAULT_TOKEN", "E2E_DATABASE_PASSWORD"
CLI_TIMEOUT = 60.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- the scene ------------------------------------------------------------------------


@dataclass
class Scene:
    """One test's servers, configuration and processes. Built and torn down by the ``scene`` fixtures."""

    workdir: Path
    database_url: str  # as the harness gives it (may hold a password)
    vault: VaultServer
    root: hvac.Client  # the root token, for arranging Vault
    mount: str  # this test's KV v2 mount
    emulator: AICoreEmulator
    audit_key: str = field(default_factory=lambda: secrets.token_hex(32))
    every: str = "2s"
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)  # rotation, http, vault overrides
    env: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    completed: list[Completed] = field(default_factory=list)  # every finished ``rotator`` command, in order
    cleanups: list[Callable[[], Any]] = field(default_factory=list)
    _engine: Engine | None = None

    def __post_init__(self) -> None:
        url = make_url(self.database_url)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "VAULT_", "BAO_"))}
        self.env |= {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            AUDIT_KEY_ENV: self.audit_key,
            VAULT_TOKEN_ENV: self.vault.token,
        }
        if url.password:
            self.env[DB_PASSWORD_ENV] = str(url.password)

    # --- arranging ------------------------------------------------------------------

    def add_tenant(self, name: str, *, editor: bool = True, client_secret: str | None = None, **target: Any) -> None:
        """An emulator tenant and the target that reaches it (its service key in a 0600 file)."""
        key = self.emulator.add_tenant(name, editor=editor, client_secret=client_secret)
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps(key))
        path.chmod(0o600)
        self.targets[name] = {"service_key": {"file": str(path)}, "timeout": "30s", **target}

    def add_secret(self, name: str, *, targets: Sequence[str], path: str, seed: bool = True, **extra: Any) -> None:
        """A configured secret fed by ``path`` in this test's mount; ``seed`` creates it in AI Core first."""
        self.secrets.append(
            {
                "name": name,
                "targets": list(targets),
                "registries": [REGISTRY],
                "source": {"kind": "kv2", "mount": self.mount, "path": path},
                "schedule": {"every": self.every},
                **extra,
            }
        )
        for target in targets if seed else ():
            self.emulator.inspect.seed(target, name, PLACEHOLDER)

    def put(self, path: str, *, username: str = "robot-e2e", password: str | None = None) -> str:
        """Write a new KV v2 version at ``path``; returns the password written."""
        value = password or secrets.token_urlsafe(24)
        self.root.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"username": username, "password": value}, mount_point=self.mount
        )
        return value

    def reader_policy(self) -> str:
        """A policy that may read this test's mount (deleted afterwards); its name."""
        policy = unique("policy")
        rules = f'path "{self.mount}/*" {{ capabilities = ["read"] }}'
        self.root.sys.create_or_update_policy(name=policy, policy=rules)
        self.cleanups.append(lambda: self.root.sys.delete_policy(policy))
        return policy

    def use_approle(self) -> str:
        """Log the workers in with AppRole (a token of their own, renewable, revoked at exit); the auth mount."""
        mount = unique("approle")
        policy = self.reader_policy()
        self.root.sys.enable_auth_method("approle", path=mount)
        self.cleanups.append(lambda: self.root.sys.disable_auth_method(mount))
        self.root.auth.approle.create_or_update_approle(
            "rotator", token_policies=[policy], token_ttl="1h", token_max_ttl="24h", mount_point=mount
        )
        role_id = self.root.auth.approle.read_role_id("rotator", mount_point=mount)["data"]["role_id"]
        secret_id = self.root.auth.approle.generate_secret_id("rotator", mount_point=mount)["data"]["secret_id"]
        secret_file = self.workdir / "approle-secret-id"
        secret_file.write_text(secret_id + "\n")
        secret_file.chmod(0o600)
        self.sections.setdefault("vault", {})["auth"] = {
            "method": "approle",
            "mount": mount,
            "role_id": role_id,
            "secret_id": {"file": str(secret_file)},
        }
        return mount

    def use_token(self, token: str) -> None:
        """Create a token with exactly this id that may read the mount, and log the workers in with it."""
        self.root.auth.token.create(id=token, policies=[self.reader_policy()], ttl="1h")
        self.cleanups.append(lambda: self.root.auth.token.revoke(token))
        self.env[VAULT_TOKEN_ENV] = token

    def use_audit_key(self, key: str) -> None:
        """Fingerprint with this HMAC key (given through an environment variable)."""
        self.audit_key = self.env[AUDIT_KEY_ENV] = key

    def set(self, section: str, **values: Any) -> None:
        """Override keys of a config section (``rotation``, ``http``, ``vault``, ``log``...)."""
        self.sections.setdefault(section, {}).update(values)

    # --- configuration ----------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.workdir / "rotator.toml"

    def document(self) -> dict[str, Any]:
        """The configuration as a mapping; ``write_config`` renders it."""
        url = make_url(self.database_url)
        database: dict[str, Any] = {
            "url": url.set(password=None).render_as_string(hide_password=False),
            "pool_size": 5,
        }
        if url.password:
            database["password"] = {"env": DB_PASSWORD_ENV}
        sections = {name: dict(values) for name, values in self.sections.items()}
        return {
            "instance": "e2e",
            "vault": {
                "address": self.vault.address,
                "auth": {"method": "token", "token": {"env": VAULT_TOKEN_ENV}},
                **sections.pop("vault", {}),
            },
            "database": database,
            "audit": {"key": {"env": AUDIT_KEY_ENV}, "key_id": KEY_ID},
            "rotation": {"shutdown_grace": "15s", **sections.pop("rotation", {})},
            "http": {"listen": "127.0.0.1:0", **sections.pop("http", {})},
            "log": {"format": "json", **sections.pop("log", {})},
            **sections,
            "targets": self.targets,
            "secrets": self.secrets,
        }

    def write_config(self) -> Path:
        """Write the TOML file and check that the service accepts it (so a test fails here, not in a worker)."""
        text = to_toml(self.document())
        tomllib.loads(text)
        self.config_path.write_text(text)
        load_settings(self.config_path)
        return self.config_path

    # --- processes --------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "service", *args, "--config", str(self.config_path)]

    def rotator(self, *args: str, expect: int | None = 0, env: Mapping[str, str] | None = None) -> Completed:
        """Run one ``rotator`` command to its end; ``expect`` is the exit code it must have (None: any)."""
        if not self.config_path.exists():
            self.write_config()
        result = subprocess.run(
            self.command(*args, "--log-format", "json"),
            env={**self.env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=CLI_TIMEOUT,
        )
        completed = Completed(args=list(args), code=result.returncode, stdout=result.stdout, stderr=result.stderr)
        self.completed.append(completed)
        if expect is not None and completed.code != expect:
            raise AssertionError(f"rotator {' '.join(args)} exited {completed.code}, not {expect}:\n{completed}")
        return completed

    def start_worker(
        self, name: str = "worker", *, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
    ) -> WorkerProcess:
        """Start ``rotator run --log-format json`` on the current config (written if needed)."""
        if not self.config_path.exists():
            self.write_config()
        worker = WorkerProcess(
            self.command("run", "--log-format", "json", *args), env={**self.env, **(env or {})}, cwd=REPO, name=name
        )
        self.workers.append(worker)
        return worker

    # --- reading back ----------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.database_url, pool_size=2, max_overflow=2)
        return self._engine

    def audit_rows(self) -> list[dict[str, Any]]:
        """The whole trail, oldest first, as ``rotator audit export --format jsonl`` writes it."""
        with streamed(self.engine, AuditFilter()) as rows:
            return [as_json(row) for row in rows]

    def open_intents(self) -> list[AuditRecord]:
        return AuditStore(self.engine).open_intents()

    def table_dump(self) -> dict[str, list[str]]:
        """Every row of every table of this database, each rendered as text."""
        with self.engine.connect() as conn:
            names = conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalars()
            return {
                name: [repr(tuple(row)) for row in conn.execute(sa.text(f'SELECT * FROM "{name}"'))]  # noqa: S608
                for name in list(names)
            }

    def fingerprint(self, stored: str | None) -> str:
        """The fingerprint the rotator computes for a stored ``.dockerconfigjson``."""
        assert stored is not None, "nothing stored"
        digest = hmac.new(self.audit_key.encode(), stored.encode(), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{KEY_ID}:{digest}"

    def stored_password(self, target: str, name: str) -> str:
        """The password inside what AI Core stores for ``name`` on ``target``."""
        stored = self.emulator.inspect.stored(target, name)
        assert stored is not None, f"nothing stored for {target}/{name}"
        return str(json.loads(stored)["auths"][REGISTRY]["password"])

    def patches(self, target: str, name: str) -> int:
        """PATCH calls AI Core accepted for ``name`` on ``target``."""
        return sum(1 for w in self.emulator.inspect.writes(target) if w.method == "PATCH" and w.name == name)

    # --- teardown ------------------------------------------------------------------

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        if self._engine is not None:
            self._engine.dispose()
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(hvac.exceptions.VaultError):
                cleanup()


@dataclass(frozen=True)
class Completed:
    """A finished ``rotator`` command."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-4000:]}"

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]

    @property
    def plain_stderr(self) -> list[str]:
        """Standard error lines that are not JSON log events."""
        return [line for line in self.stderr.splitlines() if line.strip() and not line.startswith("{")]


def rows_of(rows: Sequence[Mapping[str, Any]], **fields: Any) -> list[Mapping[str, Any]]:
    """The audit rows whose columns equal ``fields``."""
    return [row for row in rows if all(row.get(k) == v for k, v in fields.items())]


@contextlib.contextmanager
def kv_mount(root: hvac.Client) -> Iterator[str]:
    """A fresh KV v2 mount, disabled afterwards."""
    mount = unique("e2e-kv")
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    try:
        yield mount
    finally:
        root.sys.disable_secrets_engine(mount)
