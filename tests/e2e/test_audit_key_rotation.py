"""Changing the audit HMAC key: nothing unchanged is rewritten, and `audit verify` checks rows under both keys."""

from __future__ import annotations

import secrets

from tests.e2e.scene import AUDIT_KEY_ENV, Scene, rows_of

OLD_KEY_ENV = "E2E_AUDIT_KEY_OLD"


def test_a_new_audit_key_rewrites_nothing_and_the_trail_verifies_across_keys(scene: Scene) -> None:
    """k-old applies; k-new with previous_keys writes nothing unchanged, then the next change under k-new; verify ok."""
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.add_secret("ghcr-pull", targets=["tenant-a"], path="registries/ghcr")
    scene.put("registries/acme")
    scene.put("registries/ghcr")
    old_key = scene.audit_key
    scene.set("audit", key={"env": AUDIT_KEY_ENV}, key_id="old")
    scene.write_config()
    assert "2 applied" in scene.rotator("once").lines[-1]

    scene.env[OLD_KEY_ENV] = old_key
    scene.use_audit_key(secrets.token_hex(32))
    scene.set("audit", key_id="new", previous_keys=[{"key_id": "old", "key": {"env": OLD_KEY_ENV}}])
    scene.write_config()
    unchanged = scene.rotator("once")
    assert "2 unchanged" in unchanged.lines[-1], unchanged
    assert scene.patches("tenant-a", "acme-registry") == scene.patches("tenant-a", "ghcr-pull") == 1

    password = scene.put("registries/acme")
    changed = scene.rotator("once")
    assert "1 applied" in changed.lines[-1], changed
    assert scene.stored_password("tenant-a", "acme-registry") == password
    rows = scene.audit_rows()
    old_applied = rows_of(rows, event="applied", secret="acme-registry")[0]
    new_applied = rows_of(rows, event="applied", secret="acme-registry")[-1]
    assert old_applied["fingerprint"].startswith("hmac-sha256:old:")
    assert new_applied["fingerprint"].startswith("hmac-sha256:new:")
    assert new_applied["previous_fingerprint"] == old_applied["fingerprint"]
    assert {row["fingerprint"].split(":")[1] for row in rows if row["fingerprint"]} == {"old", "new"}

    verified = scene.rotator("audit", "verify")
    assert verified.lines[0].startswith(f"ok: {len(rows)} rows checked"), verified

    scene.set("audit", previous_keys=[])
    scene.write_config()
    assert "1 applied" in scene.rotator("once").lines[-1], "without the old key, ghcr-pull looks changed"
