"""The AI Core emulator as a process (``rotator emulator aicore``), driven through its admin door.

``EmulatorProcess`` offers the surface ``tests/e2e/scene.py`` uses of the in-process
``AICoreEmulator`` (``add_tenant``, ``inspect.seed / stored / writes``, ``fail_next``,
``stall_next``...), but every call is an HTTP request to ``/_emulator/`` of a separate
process, which can also be paused (SIGSTOP: AI Core hangs) and resumed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.sandbox.aicore_emulator.state import Request

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Write:
    at: float
    method: str
    name: str


# The request log as the emulator keeps it, read back over its admin door.
Logged = Request


class RemoteInspector:
    """``emulator.inspect`` over the admin door."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self._emulator = emulator

    def stored(self, tenant: str, name: str) -> str | None:
        response = self._emulator.admin("GET", f"tenants/{tenant}/secrets/{name}", ok=(200, 404))
        return None if response.status_code == 404 else str(response.json()["value"])

    def names(self, tenant: str) -> list[str]:
        return list(self._emulator.admin("GET", f"tenants/{tenant}/secrets").json()["names"])

    def writes(self, tenant: str) -> list[Write]:
        return [Write(**w) for w in self._emulator.admin("GET", f"tenants/{tenant}/writes").json()["writes"]]

    def seed(self, tenant: str, name: str, value: str) -> None:
        self._emulator.admin("PUT", f"tenants/{tenant}/secrets/{name}", {"value": value})

    def requests(self, *, since: int = 0) -> list[Logged]:
        entries = self._emulator.admin("GET", f"requests?since={since}").json()["requests"]
        return [Logged(**entry) for entry in entries]


class EmulatorProcess:
    """``rotator emulator aicore`` on a free port; ``close()`` always ends it."""

    def __init__(self, workdir: Path, *, args: tuple[str, ...] = ()) -> None:
        self.request_log = workdir / "aicore-requests.jsonl"
        tenants = workdir / "emulator-tenants.json"
        tenants.write_text(json.dumps({"tenants": [{"name": "placeholder-tenant"}]}))
        command = [sys.executable, "-m", "service", "emulator", "aicore", "--port", "0", "--tenants", str(tenants)]
        command += ["--request-log", str(self.request_log), *args]
        self.output = workdir / "emulator.out"
        self._out = self.output.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._out,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.close()
            raise AssertionError(f"the emulator did not start: {self.output.read_text()}")
        ready = json.loads(line)
        self.url: str = ready["url"]
        self._admin = httpx.Client(base_url=ready["admin"], timeout=10)
        self.inspect = RemoteInspector(self)
        self.pauses: list[tuple[float, float]] = []  # (SIGSTOP, SIGCONT) wall-clock times

    def admin(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, ok: tuple[int, ...] = (200, 201)
    ) -> httpx.Response:
        response = self._admin.request(method, path, json=body)
        if response.status_code not in ok:
            raise AssertionError(f"emulator admin {method} {path}: {response.status_code} {response.text}")
        return response

    # --- the surface Scene uses -----------------------------------------------------

    def add_tenant(self, name: str, *, editor: bool = True, client_secret: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "editor": editor}
        if client_secret is not None:
            body["client_secret"] = client_secret
        return dict(self.admin("POST", "tenants", body).json())

    def service_key(self, name: str) -> dict[str, Any]:
        return dict(self.admin("GET", f"tenants/{name}/key").json())

    def fail_next(
        self, tenant: str, *, status: int, count: int = 1, retry_after: float | None = None, endpoint: str = "api"
    ) -> None:
        body = {"status": status, "count": count, "retry_after": retry_after, "endpoint": endpoint}
        self.admin("POST", f"tenants/{tenant}/faults", body)

    def stall_next(self, tenant: str, *, seconds: float, count: int = 1, method: str | None = None) -> None:
        self.admin("POST", f"tenants/{tenant}/stalls", {"seconds": seconds, "count": count, "method": method})

    def clear_faults(self, tenant: str) -> None:
        self.admin("POST", f"tenants/{tenant}/clear")

    def set_editor(self, tenant: str, editor: bool) -> None:
        self.admin("POST", f"tenants/{tenant}/editor", {"editor": editor})

    def expire_tokens(self, tenant: str | None = None) -> None:
        self.admin("POST", "expire-tokens" if tenant is None else f"tenants/{tenant}/expire-tokens")

    def remove_secret(self, tenant: str, name: str) -> bool:
        return bool(self.admin("DELETE", f"tenants/{tenant}/secrets/{name}").json()["deleted"])

    def knobs(self, **values: Any) -> dict[str, Any]:
        """Set global knobs: ``latency_ms``, ``token_ttl``, ``fail`` (a dict or None), ``stall`` (a dict or None)."""
        return dict(self.admin("POST", "knobs", values).json())

    # --- the process ------------------------------------------------------------------

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers (AI Core hangs)."""
        self.process.send_signal(signal.SIGSTOP)
        self.pauses.append((time.time(), float("inf")))

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        start, _ = self.pauses[-1]
        self.pauses[-1] = (start, time.time())

    def text(self) -> str:
        """Everything the process wrote, and its request log."""
        log = self.request_log.read_text() if self.request_log.exists() else ""
        return self.output.read_text() + "\n" + log

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._out.close()
        if hasattr(self, "_admin"):
            self._admin.close()
