"""The emulator as a process (``rotator emulator aicore``): tenants from a file, keys to a directory.

Tenants file (JSON)::

    {"tenants": [
        {"name": "tenant-a",                  # required: letters, digits, '.', '_', '-'
         "client_id": "sb-...",              # optional (random if absent)
         "client_secret": "...",             # optional (random if absent)
         "editor": true,                      # optional: false answers 403 to writes
         "quota": 50,                         # optional: most secrets the tenant may hold
         "secrets": {"my-registry": "{\\"auths\\": {}}"}}   # optional: pre-created secrets
    ]}

Without a file: two tenants, ``tenant-a`` and ``tenant-b``, with random credentials.
With a service key directory: one ``<tenant>.json`` per tenant, mode 0600. When ready,
one JSON line goes to standard output: ``{"event": "emulator.ready", "url": ..., "admin": ...}``.

Fault knobs (``Knobs``, from the command's flags): token TTL, latency, a standing fault
rule (``--fail-status 429 --fail-burst 2 --fail-every 3 --retry-after 1``: two requests
fail, three pass, two fail...) and a standing
stall (``--stall-seconds 5 --stall-every 2``: every second PATCH is held 5 s, then
applied). They can be changed while the process runs through the admin door
(``admin.py``, below ``/_emulator/`` on the same port, loopback only). ``--request-log
FILE`` appends each answered XSUAA and API request as one JSON line (method, path,
tenant, status, times, SHA-256 of the body; never a value).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from service.errors import ConfigError, ConfigIssue
from service.sandbox.aicore_emulator.server import DEFAULT_TOKEN_TTL, AICoreEmulator
from service.sandbox.aicore_emulator.state import Periodic, PeriodicStall, Request

DEFAULT_TENANTS: list[dict[str, Any]] = [{"name": "tenant-a"}, {"name": "tenant-b"}]
_TENANT_FIELDS = {"name": str, "client_id": str, "client_secret": str, "editor": bool, "quota": int, "secrets": dict}


@dataclass(frozen=True)
class Knobs:
    """The fault knobs the process starts with (each can be changed later through the admin door)."""

    latency_ms: float = 0.0
    token_ttl: int = DEFAULT_TOKEN_TTL
    fail: Periodic | None = None
    stall: PeriodicStall | None = None
    request_log: str | None = None


def knobs_from(
    *,
    latency_ms: float,
    token_ttl: int,
    fail: tuple[int | None, int, int, str | None],
    stall: tuple[float | None, int, str],
    request_log: str | None,
) -> Knobs:
    """The knobs of ``emulator aicore``'s flags; ``ConfigError`` names each flag that is out of range."""
    status, every, burst, retry_after = fail
    seconds, stall_every, method = stall
    problems = [
        ("--latency-ms", "must be >= 0", latency_ms < 0),
        ("--token-ttl", "must be at least 1 second", token_ttl < 1),
        ("--fail-status", "must be a 4xx or 5xx status", status is not None and not 400 <= status <= 599),
        ("--fail-every", "must be at least 1", every < 1),
        ("--fail-burst", "must be at least 1", burst < 1),
        ("--retry-after", "needs --fail-status", retry_after is not None and status is None),
        ("--stall-seconds", "must be >= 0", seconds is not None and seconds < 0),
        ("--stall-every", "must be at least 1", stall_every < 1),
    ]
    issues = [ConfigIssue(flag, message) for flag, message, wrong in problems if wrong]
    if issues:
        raise ConfigError("command line", issues)
    return Knobs(
        latency_ms=latency_ms,
        token_ttl=token_ttl,
        fail=None if status is None else Periodic(status, every, burst, retry_after),
        stall=None if seconds is None else PeriodicStall(seconds, stall_every, _method(method)),
        request_log=request_log,
    )


def _method(name: str) -> str | None:
    return None if name.lower() == "any" else name.upper()


def serve(
    *,
    host: str,
    port: int,
    tenants_file: str | None,
    latency_ms: float = 0.0,
    service_key_dir: str | None,
    knobs: Knobs | None = None,
) -> int:
    """Run the emulator until SIGTERM or SIGINT; 0 on a clean stop, 2 if the port cannot be bound."""
    knobs = knobs or Knobs(latency_ms=latency_ms)
    tenants = load_tenants(Path(tenants_file)) if tenants_file else DEFAULT_TENANTS
    emulator = AICoreEmulator(host=host, port=port, latency=knobs.latency_ms / 1000, token_ttl=knobs.token_ttl)
    emulator.periodic_fault, emulator.periodic_stall = knobs.fail, knobs.stall
    try:
        request_log = _open_request_log(knobs.request_log)
    except OSError as e:
        sys.stderr.write(f"error: cannot write the request log {knobs.request_log}: {e.strerror}\n")
        return 2
    try:
        emulator.start()
    except OSError as e:
        sys.stderr.write(f"error: cannot listen on {host}:{port}: {e.strerror}\n")
        return 2
    with _stop_on_signal() as stop, contextlib.ExitStack() as files:  # handlers first: see _stop_on_signal
        if request_log is not None:
            files.enter_context(request_log)
            emulator.log_requests_to(lambda record: _append(request_log, record))
        try:
            keys = {spec["name"]: add_tenant(emulator, spec) for spec in tenants}
            if service_key_dir:
                write_service_keys(Path(service_key_dir), keys)
            ready: dict[str, Any] = {
                "event": "emulator.ready",
                "url": emulator.url,
                "admin": f"{emulator.url}/_emulator/",
            }
            ready |= {"tenants": sorted(keys), "service_key_dir": service_key_dir}
            sys.stdout.write(json.dumps(ready) + "\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
    return 0


def _open_request_log(path: str | None) -> IO[str] | None:
    return None if path is None else Path(path).open("a", encoding="utf-8", buffering=1)


_log_lock = threading.Lock()


def _append(handle: IO[str], record: Request) -> None:
    with _log_lock:
        handle.write(json.dumps(record.as_json()) + "\n")


def load_tenants(path: Path) -> list[dict[str, Any]]:
    """Read and check a tenants file; ``ConfigError`` names the file, the entry and the problem."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(str(path), [ConfigIssue("", f"cannot read the tenants file: {e.strerror}")]) from None
    except ValueError:
        raise ConfigError(str(path), [ConfigIssue("", "not valid JSON")]) from None
    entries = data.get("tenants") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(str(path), [ConfigIssue("tenants", "a non-empty list of tenants is required")])
    issues = [issue for index, entry in enumerate(entries) for issue in _tenant_issues(index, entry)]
    names = [entry["name"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("name"), str)]
    issues += [ConfigIssue("tenants", f"tenant {n!r} appears twice") for n in sorted(set(names)) if names.count(n) > 1]
    if issues:
        raise ConfigError(str(path), issues)
    return entries


def _tenant_issues(index: int, entry: Any) -> list[ConfigIssue]:
    where = f"tenants[{index}]"
    if not isinstance(entry, dict):
        return [ConfigIssue(where, "must be an object")]
    issues = [ConfigIssue(f"{where}.{key}", "unknown key") for key in entry if key not in _TENANT_FIELDS]
    issues += [
        ConfigIssue(f"{where}.{key}", f"must be {kind.__name__}")
        for key, kind in _TENANT_FIELDS.items()
        if key in entry and (not isinstance(entry[key], kind) or (kind is int and isinstance(entry[key], bool)))
    ]
    if "name" not in entry:
        issues.append(ConfigIssue(where, "name is required"))
    return issues


def add_tenant(emulator: AICoreEmulator, spec: dict[str, Any]) -> dict[str, Any]:
    """Add one tenant from its file entry, with its pre-created secrets; return its service key."""
    key = emulator.add_tenant(
        spec["name"],
        client_id=spec.get("client_id"),
        client_secret=spec.get("client_secret"),
        editor=spec.get("editor", True),
        quota=spec.get("quota", 50),
    )
    for name, value in spec.get("secrets", {}).items():
        emulator.inspect.seed(spec["name"], name, value)
    return key


def write_service_keys(directory: Path, keys: dict[str, dict[str, Any]]) -> None:
    """One ``<tenant>.json`` per tenant, readable by the owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, key in keys.items():
        path = directory / f"{name}.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(descriptor, "w") as handle:
            json.dump(key, handle, indent=2)


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs; the previous handlers come back after."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
