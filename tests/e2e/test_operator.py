"""Operator controls against real servers and real `rotator` processes: pause, resume, rollback, unpin, who did it."""

from __future__ import annotations

import http.server
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.processes import eventually, is_event, is_rotation
from tests.e2e.scene import Scene, rows_of

PATH = "registries/acme"
OPERATOR = {"ROTATOR_OPERATOR": "alice@ops"}


def _one_secret(scene: Scene, *targets: str) -> None:
    for target in targets or ("tenant-a",):
        scene.add_tenant(target)
    scene.add_secret("acme-registry", targets=list(targets or ("tenant-a",)), path=PATH)


def _exported(scene: Scene) -> list[dict[str, object]]:
    return [json.loads(line) for line in scene.rotator("audit", "export", "--format", "jsonl").lines]


def test_a_pause_while_run_goes_writes_nothing_and_resume_writes(scene: Scene) -> None:
    """A running worker obeys a pause at its next tick (nothing written), and a resume at the one after."""
    _one_secret(scene)
    first = scene.put(PATH)
    worker = scene.start_worker()
    worker.wait_for(is_rotation(outcome="applied", source_version=1), what="the first rotation")
    paused = scene.rotator("pause", "--secret", "acme-registry", "--reason", "incident 42", env=OPERATOR)
    assert paused.lines[0] == "paused secret acme-registry on every target by alice@ops: incident 42"
    mark = worker.mark()
    scene.put(PATH)
    event = worker.wait_for(is_rotation(outcome="paused"), since=mark, timeout=10, what="a paused tick")
    assert "alice@ops" in event["message"]
    worker.wait_for(is_rotation(outcome="paused"), since=worker.mark(), timeout=10, what="a second paused tick")
    assert scene.stored_password("tenant-a", "acme-registry") == first
    assert scene.patches("tenant-a", "acme-registry") == 1
    base = worker.http_url()
    [row] = httpx.get(f"{base}/status", timeout=5).json()["rotations"]
    assert row["hold"] == "paused"
    assert "incident 42" in row["paused"]
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'rotator_paused{secret="acme-registry",target="tenant-a"} 1.0' in metrics
    resumed = scene.rotator("resume", "--secret", "acme-registry", "--operator", "bob", "--reason", "fixed")
    assert resumed.lines[0].startswith("resumed secret acme-registry on every target")
    worker.wait_for(is_rotation(outcome="applied", source_version=2), since=mark, timeout=10, what="resumed")
    assert worker.stop() == 0
    rows = _exported(scene)
    [pause_row] = rows_of(rows, event="paused")
    assert (pause_row["operator"], pause_row["reason"], pause_row["secret"]) == (
        "alice@ops",
        "incident 42",
        "acme-registry",
    )
    assert str(pause_row["actor"]).endswith("@e2e"), "the process that wrote the row stays the actor"
    [resume_row] = rows_of(rows, event="resumed")
    assert (resume_row["operator"], resume_row["reason"]) == ("bob", "fixed")
    assert scene.rotator("audit", "verify").stdout.startswith("ok:")


def test_a_rollback_survives_three_scheduled_ticks_and_unpin_brings_the_current_version_back(scene: Scene) -> None:
    """rollback writes version 1 (trigger rollback) and pins it; the worker keeps it; unpin writes version 2 again."""
    _one_secret(scene)
    old = scene.put(PATH)
    current = scene.put(PATH)
    worker = scene.start_worker()
    worker.wait_for(is_rotation(outcome="applied", source_version=2), what="the first rotation")
    back = scene.rotator(
        "rollback", "--secret", "acme-registry", "--to-version", "1", "--reason", "v2 breaks pulls", env=OPERATOR
    )
    assert back.lines[0].startswith("applied")
    assert "v1" in back.lines[0].split()
    assert scene.stored_password("tenant-a", "acme-registry") == old
    mark = worker.mark()
    for tick in range(3):
        worker.wait_for(
            is_rotation(outcome="unchanged", source_version=1), since=mark, timeout=10, what=f"pinned tick {tick + 1}"
        )
        mark = worker.mark()
    assert scene.stored_password("tenant-a", "acme-registry") == old
    status = scene.rotator("status", "--json")
    [row] = json.loads(status.stdout)
    assert (row["hold"], row["pinned_version"]) == ("pinned v1", 1)
    unpinned = scene.rotator("unpin", "--secret", "acme-registry", "--reason", "v3 coming", env=OPERATOR)
    assert unpinned.lines[0].startswith("unpinned tenant-a/acme-registry (was pinned to version 1 by alice@ops")
    assert unpinned.lines[1].split()[0] in ("applied", "unchanged"), "unchanged: the worker's tick was first"
    assert scene.stored_password("tenant-a", "acme-registry") == current
    assert worker.stop() == 0
    rows = _exported(scene)
    [pinned] = rows_of(rows, event="pinned")
    assert (pinned["trigger"], pinned["source_version"], pinned["operator"]) == ("rollback", 1, "alice@ops")
    [rollback_write] = rows_of(rows, event="applied", trigger="rollback")
    assert (rollback_write["source_version"], rollback_write["reason"]) == (1, "v2 breaks pulls")
    first = rows_of(rows, event="applied", source_version=2)[0]  # the worker's first rotation
    assert rollback_write["fingerprint"] != first["fingerprint"], "version 1 is another credential"
    # The pin is committed before the rollback's own write, so a worker's tick may write v1 first;
    # the rollback's write then finds v1 already there, and the trail says so.
    ticks_first = [
        row
        for row in rows_of(rows, event="applied", source_version=1)
        if row["trigger"] != "rollback" and row["seq"] < rollback_write["seq"]
    ]
    expected_previous = rollback_write["fingerprint"] if ticks_first else first["fingerprint"]
    assert rollback_write["previous_fingerprint"] == expected_previous
    [unpin_row] = rows_of(rows, event="unpinned")
    assert unpin_row["operator"] == "alice@ops"
    listed = scene.rotator("audit", "list", "--operator", "alice@ops", "--format", "jsonl")
    assert {json.loads(line)["event"] for line in listed.lines} == {"pinned", "intent", "applied", "unpinned"}
    by_instance = scene.rotator("audit", "list", "--actor", "e2e", "--format", "jsonl", "--limit", "500")
    assert len(by_instance.lines) == len(rows)


def test_once_records_the_operator_and_force_refuses_a_paused_pair(scene: Scene) -> None:
    """once names its operator in the trail; once --force on a paused pair exits 2 unless --ignore-pause."""
    _one_secret(scene)
    scene.put(PATH)
    scene.rotator("once", "--reason", "first rollout", env=OPERATOR)
    assert {row["operator"] for row in _exported(scene)} == {"alice@ops"}
    scene.rotator("pause", "--all", "--reason", "freeze")
    skipped = scene.rotator("once")
    assert skipped.lines[0].startswith("paused")
    refused = scene.rotator("once", "--force", expect=2)
    [line] = refused.plain_stderr
    assert "tenant-a/acme-registry" in line
    assert "--ignore-pause" in line
    forced = scene.rotator("once", "--force", "--ignore-pause", "--reason", "hotfix", env=OPERATOR)
    assert forced.lines[0].startswith("applied")
    assert rows_of(_exported(scene), event="forced", operator="alice@ops", reason="hotfix")


def test_pausing_what_is_paused_says_so_and_bad_names_exit_2(scene: Scene) -> None:
    """A second pause exits 0 naming the first; unknown secrets and targets get one line and exit 2."""
    _one_secret(scene)
    scene.rotator("pause", "--target", "tenant-a", "--reason", "maintenance", env=OPERATOR)
    again = scene.rotator("pause", "--target", "tenant-a", "--reason", "again")
    assert again.lines == [again.lines[0]]
    assert "already paused" in again.lines[0]
    assert "alice@ops" in again.lines[0]
    assert "maintenance" in again.lines[0]
    for args in (
        ("pause", "--secret", "nope", "--reason", "x"),
        ("pause", "--target", "nope", "--reason", "x"),
        ("resume", "--secret", "nope"),
        ("rollback", "--secret", "nope", "--to-version", "1", "--reason", "x"),
        ("unpin", "--secret", "acme-registry", "--target", "nope"),
    ):
        result = scene.rotator(*args, expect=2)
        assert len(result.plain_stderr) == 1, result
        assert "nope" in result.plain_stderr[0]
    assert len(rows_of(_exported(scene), event="paused")) == 1
    not_paused = scene.rotator("resume", "--secret", "acme-registry")
    assert "not paused" in not_paused.lines[0]
    assert "still paused" in not_paused.lines[1]


def test_a_rollback_to_a_version_vault_cannot_give_writes_nothing(scene: Scene) -> None:
    """A version that does not exist, or was deleted or destroyed, is one line and exit 2; nothing is written."""
    _one_secret(scene)
    for _ in range(3):
        scene.put(PATH)
    scene.root.secrets.kv.v2.delete_secret_versions(path=PATH, versions=[1], mount_point=scene.mount)
    scene.root.secrets.kv.v2.destroy_secret_versions(path=PATH, versions=[2], mount_point=scene.mount)
    for version, words in (("9", "does not exist"), ("1", "deleted"), ("2", "destroyed")):
        result = scene.rotator(
            "rollback", "--secret", "acme-registry", "--to-version", version, "--reason", "x", expect=2
        )
        assert len(result.plain_stderr) == 1, result
        assert words in result.plain_stderr[0], result.plain_stderr
    assert _exported(scene) == []
    assert scene.emulator.inspect.writes("tenant-a") == []
    assert json.loads(scene.rotator("status", "--json").stdout)[0]["hold"] is None


def test_a_rollback_of_a_kv1_source_is_refused(scene: Scene) -> None:
    """Only KV v2 keeps versions: a rollback of another kind of source is one line, exit 2."""
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path=PATH)
    scene.secrets[0]["source"] = {"kind": "kv1", "mount": "kv1-nowhere", "path": PATH}
    result = scene.rotator("rollback", "--secret", "acme-registry", "--to-version", "1", "--reason", "x", expect=2)
    [line] = result.plain_stderr
    assert "kv1" in line
    assert "KV v2" in line


def test_a_write_falling_in_a_deny_window_waits_for_the_window_s_end(scene: Scene) -> None:
    """A deny window open at start: the worker defers (state says so) and writes only once the window has ended."""
    now = datetime.now(UTC)  # the window opened at this whole minute and stays open 20 s from now
    end = now.replace(second=0, microsecond=0) + timedelta(seconds=now.second + 20)
    scene.add_tenant("tenant-a")
    window = {"kind": "deny", "cron": f"{now.minute} {now.hour} * * *", "duration": f"{now.second + 20}s"}
    scene.add_secret("acme-registry", targets=["tenant-a"], path=PATH, windows=[window])
    scene.put(PATH)
    check = scene.rotator("check", "--offline")
    assert any("window (secret acme-registry): deny" in line for line in check.lines)
    worker = scene.start_worker()
    deferred = worker.wait_for(is_rotation(outcome="deferred"), timeout=10, what="a deferred run")
    assert "deny window" in deferred["message"]
    [row] = json.loads(scene.rotator("status", "--json").stdout)
    assert (row["last_outcome"], row["hold"]) == ("deferred", "window")
    assert datetime.fromisoformat(row["next_run_at"]) == end.replace(microsecond=0)
    assert scene.emulator.inspect.writes("tenant-a") == []
    worker.wait_for(is_rotation(outcome="applied"), timeout=30, what="the write after the window")
    [patch] = scene.emulator.inspect.writes("tenant-a")
    ended_at = time.monotonic() - (datetime.now(UTC) - end).total_seconds()
    assert patch.at >= ended_at - 0.05, f"written {ended_at - patch.at:.2f}s before the window's end"
    assert patch.at <= ended_at + 3.0, f"written {patch.at - ended_at:.2f}s after the window's end"
    assert worker.stop() == 0


def test_plan_says_what_once_would_do_and_writes_nothing(scene: Scene) -> None:
    """plan: write, unchanged, create or fail per pair, from Vault, registry and AI Core read-only; no row moves."""
    for target in ("tenant-a", "tenant-b"):
        scene.add_tenant(target)
    scene.add_secret("acme-registry", targets=["tenant-a"], path=PATH)
    scene.add_secret("fresh-registry", targets=["tenant-a"], path="registries/fresh", seed=False, create_missing=True)
    scene.add_secret("absent-registry", targets=["tenant-b"], path="registries/absent", seed=False)
    scene.add_secret("gone-registry", targets=["tenant-b"], path="registries/nowhere")
    scene.add_secret("same-registry", targets=["tenant-b"], path="registries/same")
    for path in (PATH, "registries/fresh", "registries/absent", "registries/same"):
        scene.put(path)
    scene.rotator("once", "--secret", "same-registry")
    scene.put(PATH)
    before, writes = scene.table_dump(), len(scene.emulator.inspect.writes("tenant-a"))
    planned = scene.rotator("plan", expect=1)
    verdicts = {line.split()[1]: line.split()[0] for line in planned.lines if "/" in line.split()[1]}
    assert verdicts == {
        "tenant-a/acme-registry": "write",
        "tenant-a/fresh-registry": "create",
        "tenant-b/absent-registry": "fail",
        "tenant-b/gone-registry": "fail",
        "tenant-b/same-registry": "unchanged",
    }
    text = planned.stdout
    assert "create it first" in text
    assert "[source_not_found]" in text
    assert "target tenant-a: token ok;" in text
    assert planned.lines[-1].endswith("nothing was written")
    assert scene.table_dump() == before
    assert len(scene.emulator.inspect.writes("tenant-a")) == writes
    only = scene.rotator("plan", "--secret", "acme-registry")
    assert only.lines[0].startswith("write")
    assert scene.rotator("plan", "--secret", "nope", expect=2).plain_stderr[0].count("nope") == 1


def test_a_failure_reaches_the_loopback_webhook_once_and_so_does_the_recovery(scene: Scene) -> None:
    """Failing ticks notify once (rate limit), the fix notifies its recovery once; no value in any message."""
    received: list[dict[str, object]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scene.cleanups.append(server.server_close)
    scene.cleanups.append(server.shutdown)  # cleanups run newest first: stop serving, then close the socket
    scene.env["E2E_NOTIFY_URL"] = f"json://127.0.0.1:{server.server_port}/hook"
    scene.set("notify", urls=[{"env": "E2E_NOTIFY_URL"}], failures_in_a_row=2, period="1h")
    _one_secret(scene)  # nothing in Vault yet: every tick fails with source_not_found
    worker = scene.start_worker()
    for _ in range(4):
        worker.wait_for(is_rotation(outcome="failed"), since=worker.mark(), timeout=15, what="a failing tick")
    eventually(lambda: received, timeout=10, what="the failure notification")
    password = scene.put(PATH)
    worker.wait_for(is_rotation(outcome="applied"), timeout=15, what="the fix")
    worker.wait_for(is_rotation(outcome="unchanged"), timeout=15, what="a tick after the fix")
    eventually(lambda: len(received) >= 2, timeout=10, what="the recovery notification")
    assert worker.stop() == 0
    titles = [message["title"] for message in received]
    assert titles == ["rotator: failing tenant-a/acme-registry", "rotator: recovered tenant-a/acme-registry"]
    assert [message["type"] for message in received] == ["failure", "success"]
    assert "[source_not_found]" in str(received[0]["message"])
    assert all(password not in json.dumps(message) for message in received)
    assert worker.matching(is_event("notify.sent", kind="recovered"))


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, object]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_notify_url_apprise_cannot_parse_exits_2_naming_its_key(scene: Scene) -> None:
    """once with an unparseable notify URL: one line naming notify.urls[0], not the URL; exit 2, nothing written."""
    scene.env["E2E_NOTIFY_URL"] = "nonsense://SENTINEL-hook-token"
    scene.set("notify", urls=[{"env": "E2E_NOTIFY_URL"}])
    _one_secret(scene)
    scene.put(PATH)
    result = scene.rotator("once", expect=2)
    [line] = result.plain_stderr
    assert "notify.urls[0]" in line
    assert "SENTINEL" not in result.stderr
    assert scene.emulator.inspect.writes("tenant-a") == []


def test_a_rollback_that_does_not_land_leaves_no_pin(scene: Scene) -> None:
    """AI Core refuses the write (403): rollback exits 1, and its pin is removed again (audited)."""
    scene.add_tenant("read-only", editor=False)
    scene.add_secret("acme-registry", targets=["read-only"], path=PATH)
    scene.put(PATH)
    scene.put(PATH)
    result = scene.rotator("rollback", "--secret", "acme-registry", "--to-version", "1", "--reason", "x", expect=1)
    assert result.lines[0].startswith("failed")
    assert json.loads(scene.rotator("status", "--json").stdout)[0]["hold"] is None
    events = [row["event"] for row in _exported(scene)]
    assert events == ["pinned", "intent", "failed", "unpinned"]
