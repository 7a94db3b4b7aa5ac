"""Small steps the fault cases share: arranging pairs, starting replicas, waiting for a value to land."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.processes import WorkerProcess, eventually, is_event, is_rotation
from tests.faults.scene import FaultScene

SETTLE = 20.0  # seconds a healthy worker gets to bring a pair up to date after a fault is lifted


def pair(case: FaultScene, secret: str = "acme", *, target: str = "tenant-a", seed: bool = True, **extra: Any) -> str:
    """A tenant (if new), a secret on it fed by ``reg/<secret>``, and a first value there; the password."""
    if target not in case.targets:
        case.add_tenant(target)
    path = f"reg/{secret}-{target}"
    case.add_secret(secret, targets=[target], path=path, seed=seed, **extra)
    return case.put(path)


def path_of(case: FaultScene, secret: str, target: str = "tenant-a") -> str:
    return f"reg/{secret}-{target}"


def replicas(case: FaultScene, count: int) -> list[WorkerProcess]:
    """``count`` workers named replica-0..., each with its own instance name, all started."""
    workers = [case.start_worker(f"replica-{n}", env={"ROTATOR_INSTANCE": f"replica-{n}"}) for n in range(count)]
    for worker in workers:
        worker.wait_for(is_event("worker.started"), what="worker.started")
    return workers


def started(case: FaultScene, name: str = "worker") -> WorkerProcess:
    worker = case.start_worker(name)
    worker.wait_for(is_event("worker.started"), what="worker.started")
    return worker


def holds(case: FaultScene, target: str, secret: str, password: str, *, timeout: float = SETTLE) -> None:
    """Wait until AI Core stores ``password`` for the pair."""

    def landed() -> bool:
        stored = case.emulator.inspect.stored(target, secret)
        if stored is None:
            return False
        auths = json.loads(stored).get("auths", {})
        return any(entry.get("password") == password for entry in auths.values())

    eventually(landed, timeout=timeout, what=f"{target}/{secret} holds the new password")


def outcome(
    worker: WorkerProcess, value: str, *, since: int = 0, timeout: float = SETTLE, **fields: Any
) -> dict[str, Any]:
    """The first canonical rotation line with outcome ``value`` (and ``fields``) after mark ``since``."""
    return worker.wait_for(is_rotation(outcome=value, **fields), since=since, timeout=timeout, what=f"outcome {value}")


def owner(case: FaultScene) -> str:
    """The instance whose intent is open now (from its actor ``rotator/<version>@<instance>``)."""
    intent = eventually(case.open_intents, timeout=15, what="an intent in flight")[0]
    return intent.event.actor.rsplit("@", 1)[-1]


def probe(worker: WorkerProcess, path: str) -> int:
    """The HTTP status of one of the worker's probes."""
    return httpx.get(worker.http_url(timeout=10) + path, timeout=5).status_code


def readiness(worker: WorkerProcess) -> str:
    """The body of /readyz (it names each dependency)."""
    return httpx.get(worker.http_url(timeout=10) + "/readyz", timeout=5).text


def waited(worker: WorkerProcess, *, attempts: int) -> None:
    """Wait until the worker logged ``worker.waiting`` for ``attempts`` attempts, one line each, numbered in turn."""
    worker.wait_for(is_event("worker.waiting", attempt=attempts), timeout=30, what=f"worker.waiting attempt {attempts}")
    lines = worker.matching(is_event("worker.waiting"))
    assert [line["attempt"] for line in lines] == list(range(1, len(lines) + 1)), lines
