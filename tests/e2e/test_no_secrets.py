"""A whole run with sentinel secrets: none of them appears in any log line, output, table row or HTTP answer."""

from __future__ import annotations

import base64
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.processes import is_rotation
from tests.e2e.scene import Scene


def sentinel(kind: str) -> str:
    return f"SENTINEL-{kind}-{uuid.uuid4().hex}"


def leaks(haystacks: dict[str, str], needles: dict[str, str]) -> list[str]:
    """``what in where`` for every needle found, in plain text or base64."""
    found = []
    for what, needle in needles.items():
        forms = {needle, base64.b64encode(needle.encode()).decode().rstrip("="), needle[9:]}  # 9: "SENTINEL-"
        found += [f"{what} in {where}" for where, text in haystacks.items() for form in forms if form in text]
    return found


@pytest.mark.slow
def test_no_secret_reaches_logs_outputs_tables_or_http(scene: Scene) -> None:
    """Passwords, the Vault token, the audit key and the AI Core client secrets stay where they belong."""
    secrets = {
        "first password": sentinel("pw1"),
        "second password": sentinel("pw2"),
        "vault token": sentinel("vt"),
        "audit key": sentinel("ak"),
        "client secret": sentinel("cs"),
        "read-only client secret": sentinel("cs2"),
    }
    scene.use_token(secrets["vault token"])
    scene.use_audit_key(secrets["audit key"])
    scene.add_tenant("tenant-a", client_secret=secrets["client secret"])
    scene.add_tenant("read-only", editor=False, client_secret=secrets["read-only client secret"])
    scene.add_secret("acme-registry", targets=["tenant-a", "read-only"], path="registries/acme")
    scene.put("registries/acme", password=secrets["first password"])

    worker = scene.start_worker(args=["--log-level", "debug"])
    base = worker.http_url()
    worker.wait_for(is_rotation(target="tenant-a", outcome="applied"), what="the first rotation")
    worker.wait_for(is_rotation(target="read-only", outcome="failed"), what="the refused rotation")
    mark = worker.mark()
    scene.put("registries/acme", password=secrets["second password"])
    worker.wait_for(is_rotation(target="tenant-a", outcome="applied"), since=mark, what="the second rotation")

    seen = {f"GET {path}": httpx.get(f"{base}{path}", timeout=5).text for path in ("/status", "/metrics", "/readyz")}
    assert worker.stop(signal.SIGTERM) == 0
    seen["worker log"] = worker.text()
    commands = (
        (("once", "--force", "--json"), 1),
        (("once", "--dry-run"), 0),
        (("status",), 0),
        (("status", "--json"), 0),
        (("audit", "list", "--limit", "100"), 0),
        (("audit", "export", "--format", "csv"), 0),
        (("audit", "show", "2", "--format", "text"), 0),
        (("audit", "verify"), 0),
        (("check",), 0),
    )
    with ThreadPoolExecutor(max_workers=3) as pool:  # each command is a process: two cores, three at a time
        for result in pool.map(lambda command: scene.rotator(*command[0], expect=command[1]), commands):
            seen[f"rotator {' '.join(result.args)}"] = result.stdout + result.stderr
    for table, rows in scene.table_dump().items():
        seen[f"table {table}"] = "\n".join(rows)

    assert {"table audit_events", "table rotation_state", "table leases", "table audit_chain_head"} <= set(seen)
    assert "forced" in seen["table audit_events"], "the forced rewrite was recorded"
    assert leaks(seen, secrets) == []
    # The search can find them: AI Core holds the password, base64 included, and the search sees both forms.
    stored = scene.emulator.inspect.stored("tenant-a", "acme-registry") or ""
    assert leaks({"AI Core": stored}, {"second password": secrets["second password"]}) == [
        "second password in AI Core",
        "second password in AI Core",
    ]
