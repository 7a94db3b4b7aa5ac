"""`rotator run` refuses bad surroundings clearly: one line saying what is wrong, the right exit code."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from service.sandbox.processes import free_port
from tests.e2e.processes import is_event, is_rotation
from tests.e2e.scene import Scene

PROMPTLY = 15.0  # seconds; a refusal at start-up needs no retries


def test_run_on_an_unmigrated_database_exits_2_naming_db_upgrade(bare_scene: Scene) -> None:
    """No schema yet: exit 2 with one line that says to run `rotator db upgrade`, and no traceback."""
    bare_scene.add_tenant("tenant-a")
    bare_scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    started = time.monotonic()
    result = bare_scene.rotator("run", expect=2)
    assert time.monotonic() - started < PROMPTLY
    assert len(result.plain_stderr) == 1, result.plain_stderr
    [line] = result.plain_stderr
    assert line.startswith("error: database is at no revision (no schema yet), head is ")
    assert "rotator db upgrade" in line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert bare_scene.emulator.inspect.request_count() == 0


def test_run_with_vault_unreachable_at_start_waits_and_starts_once_it_answers(scene: Scene) -> None:
    """Nothing at the Vault address: run waits with backoff (one line per attempt), not ready, alive; then rotates."""
    port = free_port()
    scene.set("vault", address=f"http://127.0.0.1:{port}")
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    worker = scene.start_worker()
    first = worker.wait_for(is_event("worker.waiting"), what="a first wait")
    assert first["error"] == "vault_unavailable"
    assert f"127.0.0.1:{port}" in first["message"]
    second = worker.wait_for(is_event("worker.waiting", attempt=2), what="a second attempt")
    assert second["retry_in_s"] > first["retry_in_s"]  # backoff
    base = worker.http_url()
    assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 503, worker.tail()
    assert ready.json()["checks"]["vault"].startswith("vault_unavailable")
    assert scene.audit_rows() == []
    assert scene.emulator.inspect.request_count() == 0
    with forward(port, to=scene.vault.address):
        worker.wait_for(is_event("worker.dependencies_ready"), timeout=45, what="Vault answering")
        worker.wait_for(is_rotation(secret="acme-registry", outcome="applied"), what="the first rotation")
        assert worker.stop() == 0
    assert "Traceback" not in worker.text()


@contextlib.contextmanager
def forward(port: int, *, to: str) -> Iterator[None]:
    """A loopback TCP forwarder from ``port`` to the server at URL ``to``: a dependency that comes back."""
    target = urlsplit(to)
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    stop = threading.Event()
    opened: list[socket.socket] = []

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection((target.hostname, target.port))
            opened.extend((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for sock in opened:
            sock.close()
