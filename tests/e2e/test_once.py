"""`rotator once`: one sweep now, a line per rotation, exit 1 if any failed (for a CronJob)."""

from __future__ import annotations

import json

from tests.e2e.scene import Scene, rows_of

SUMMARY = "run "  # the last line: "run <id>: 2 applied in 123ms; audit head ..."


def _two_secrets_on_two_targets(scene: Scene) -> dict[str, str]:
    for target in ("tenant-a", "tenant-b"):
        scene.add_tenant(target)
    passwords = {}
    for name, path in (("acme-registry", "registries/acme"), ("ghcr-pull", "registries/ghcr")):
        scene.add_secret(name, targets=["tenant-a", "tenant-b"], path=path)
        passwords[name] = scene.put(path)
    return passwords


def _results(stdout: str) -> dict[str, str]:
    """``target/secret`` -> outcome, from the result lines (the summary line left out)."""
    return {line.split()[1]: line.split()[0] for line in stdout.splitlines() if line and not line.startswith(SUMMARY)}


def test_once_prints_a_line_per_rotation_and_exits_0(scene: Scene) -> None:
    """Every (target, secret) is rotated, reported on its own line with its short fingerprint, and summed up."""
    passwords = _two_secrets_on_two_targets(scene)
    result = scene.rotator("once")
    assert _results(result.stdout) == {
        "tenant-a/acme-registry": "applied",
        "tenant-b/acme-registry": "applied",
        "tenant-a/ghcr-pull": "applied",
        "tenant-b/ghcr-pull": "applied",
    }
    assert result.lines[-1].startswith(SUMMARY)
    assert "4 applied" in result.lines[-1]
    rows = scene.audit_rows()
    for line in result.lines[:-1]:
        key = line.split()[1]
        [applied] = rows_of(rows, event="applied", target=key.split("/")[0], secret=key.split("/")[1])
        assert applied["trigger"] == "manual"
        assert f"{applied['fingerprint'].split(':')[1]}:{applied['fingerprint'][-64:][:12]}" in line
        assert " 202 " in f"{line} "
    for target in ("tenant-a", "tenant-b"):
        for name, password in passwords.items():
            assert scene.stored_password(target, name) == password


def test_once_exits_1_when_a_rotation_fails_while_the_other_secrets_still_rotate(scene: Scene) -> None:
    """A 403 from a tenant without the editor role and a missing Vault path fail; the rest is applied."""
    scene.add_tenant("tenant-a")
    scene.add_tenant("read-only", editor=False)
    scene.add_secret("acme-registry", targets=["tenant-a", "read-only"], path="registries/acme")
    scene.add_secret("gone-registry", targets=["tenant-a"], path="registries/nowhere")
    password = scene.put("registries/acme")
    result = scene.rotator("once", expect=1)
    lines = {line.split()[1]: line for line in result.lines[:-1]}
    assert lines["tenant-a/acme-registry"].startswith("applied")
    assert lines["read-only/acme-registry"].startswith("failed")
    assert "403" in lines["read-only/acme-registry"]
    assert "[aicore_forbidden]" in lines["read-only/acme-registry"]
    assert lines["tenant-a/gone-registry"].startswith("failed")
    assert "[source_not_found]" in lines["tenant-a/gone-registry"]
    assert scene.stored_password("tenant-a", "acme-registry") == password
    assert scene.emulator.inspect.writes("read-only") == []
    rows = scene.audit_rows()
    [failed] = rows_of(rows, event="failed")
    assert (failed["target"], failed["http_status"], failed["error_code"]) == ("read-only", 403, "aicore_forbidden")
    assert not rows_of(rows, secret="gone-registry"), "nothing read, nothing intended"
    assert scene.open_intents() == []


def test_once_dry_run_reports_what_it_would_do_and_writes_nothing(scene: Scene) -> None:
    """--dry-run reads and compares but neither PATCHes AI Core nor appends to the audit trail."""
    _two_secrets_on_two_targets(scene)
    dry = scene.rotator("once", "--dry-run")
    assert set(_results(dry.stdout).values()) == {"dry_run"}
    assert all("would write" in line for line in dry.lines[:-1])
    assert scene.emulator.inspect.request_count(method="PATCH") == 0
    assert scene.audit_rows() == []

    scene.rotator("once")
    scene.put("registries/acme")
    writes, rows = scene.emulator.inspect.request_count(method="PATCH"), scene.audit_rows()
    again = {line.split()[1]: line for line in scene.rotator("once", "--dry-run").lines[:-1]}
    assert "would write" in again["tenant-a/acme-registry"]
    assert "would write" in again["tenant-b/acme-registry"]
    assert "up to date" in again["tenant-a/ghcr-pull"]
    assert "up to date" in again["tenant-b/ghcr-pull"]
    assert scene.emulator.inspect.request_count(method="PATCH") == writes
    assert scene.audit_rows() == rows


def test_once_force_rewrites_an_unchanged_credential_and_the_trail_shows_forced(scene: Scene) -> None:
    """Unchanged means no PATCH; --force writes it again, recorded as `forced` before its intent."""
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    scene.rotator("once")
    assert _results(scene.rotator("once").stdout) == {"tenant-a/acme-registry": "unchanged"}
    assert scene.patches("tenant-a", "acme-registry") == 1

    forced = scene.rotator("once", "--force", "--json")
    [result] = [json.loads(line) for line in forced.lines]
    assert result["outcome"] == "applied"
    assert scene.patches("tenant-a", "acme-registry") == 2
    events = [row["event"] for row in scene.audit_rows()]
    assert events == ["intent", "applied", "forced", "intent", "applied"]
    forced_row, intent = scene.audit_rows()[2:4]
    assert forced_row["trigger"] == intent["trigger"] == "manual"
    assert forced_row["fingerprint"] == forced_row["previous_fingerprint"] == result["fingerprint"]


def test_once_filters_by_secret_and_target(scene: Scene) -> None:
    """--secret and --target limit the sweep to the named secrets and targets, and combine."""
    _two_secrets_on_two_targets(scene)
    only_secret = _results(scene.rotator("once", "--secret", "ghcr-pull").stdout)
    assert only_secret == {"tenant-a/ghcr-pull": "applied", "tenant-b/ghcr-pull": "applied"}
    only_target = _results(scene.rotator("once", "--target", "tenant-b").stdout)
    assert only_target == {"tenant-b/acme-registry": "applied", "tenant-b/ghcr-pull": "unchanged"}
    both = _results(scene.rotator("once", "--secret", "acme-registry", "--target", "tenant-a").stdout)
    assert both == {"tenant-a/acme-registry": "applied"}
    assert scene.patches("tenant-a", "ghcr-pull") == scene.patches("tenant-b", "ghcr-pull") == 1


def test_once_refuses_an_unknown_secret_with_exit_2(scene: Scene) -> None:
    """An unknown --secret is bad usage: exit 2, the name in the message, nothing rotated."""
    _two_secrets_on_two_targets(scene)
    result = scene.rotator("once", "--secret", "no-such-secret", expect=2)
    assert result.plain_stderr == [
        "error: command line: --secret: no secret named 'no-such-secret' in the configuration"
    ]
    assert result.stdout == ""
    assert scene.emulator.inspect.request_count() == 0
    assert scene.audit_rows() == []
