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
one JSON line goes to standard output: ``{"event": "emulator.ready", "url": ..., ...}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from service.errors import ConfigError, ConfigIssue
from service.sandbox.aicore_emulator.server import AICoreEmulator

DEFAULT_TENANTS: list[dict[str, Any]] = [{"name": "tenant-a"}, {"name": "tenant-b"}]
_TENANT_FIELDS = {"name": str, "client_id": str, "client_secret": str, "editor": bool, "quota": int, "secrets": dict}


def serve(*, host: str, port: int, tenants_file: str | None, latency_ms: float, service_key_dir: str | None) -> int:
    """Run the emulator until SIGTERM or SIGINT; 0 on a clean stop, 2 if the port cannot be bound."""
    tenants = load_tenants(Path(tenants_file)) if tenants_file else DEFAULT_TENANTS
    emulator = AICoreEmulator(host=host, port=port, latency=latency_ms / 1000)
    try:
        emulator.start()
    except OSError as e:
        sys.stderr.write(f"error: cannot listen on {host}:{port}: {e.strerror}\n")
        return 2
    with _stop_on_signal() as stop:  # handlers first: a signal right after the ready line must not kill us
        try:
            keys = {spec["name"]: add_tenant(emulator, spec) for spec in tenants}
            if service_key_dir:
                write_service_keys(Path(service_key_dir), keys)
            ready = {"event": "emulator.ready", "url": emulator.url, "tenants": sorted(keys)}
            sys.stdout.write(json.dumps(ready | {"service_key_dir": service_key_dir}) + "\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
    return 0


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
