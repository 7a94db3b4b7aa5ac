"""`rotator run` signs each new chain head into a file; `verify --anchors` catches what the database hides."""

from __future__ import annotations

import json

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.processes import is_event, is_rotation
from tests.e2e.scene import AUDIT_KEY_ENV, KEY_ID, Scene
from tests.e2e.test_status import sample, scrape


def test_the_worker_anchors_moved_heads_survives_a_broken_sink_and_verify_catches_deleted_rows(scene: Scene) -> None:
    """Signed anchors reach the file while the Vault sink fails (logged, counted, rotations go on); deleting the
    newest rows and forging the head row passes plain verify but not verify --anchors."""
    key = scene.workdir / "anchor-key.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)
    anchors_file = scene.workdir / "anchors.jsonl"
    anchors = {
        "sinks": ["log", "file", "vault"],
        "file": str(anchors_file),
        "vault": {"mount": "no-such-mount", "path": "rotator/anchors"},
        "signing": {"kind": "ed25519", "key": {"file": str(key)}},
    }
    scene.set("audit", key={"env": AUDIT_KEY_ENV}, key_id=KEY_ID, anchors=anchors)
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    worker = scene.start_worker()
    worker.wait_for(is_rotation(secret="acme-registry", outcome="applied"), what="the first rotation")
    mark = worker.mark()
    scene.put("registries/acme")
    worker.wait_for(is_rotation(secret="acme-registry", source_version=2), since=mark, what="version 2 rotated")
    worker.wait_for(is_event("audit.anchor"), since=mark, what="the second anchor")
    failures = sample(scrape(worker.http_url()), "rotator_audit_anchor_failures_total", sink="vault")
    assert worker.stop() == 0

    failed = worker.matching(is_event("audit.anchor_failed"))
    assert failures is not None
    assert failures >= 2
    assert {line["sink"] for line in failed} == {"vault"}
    logged = [line["anchor"] for line in worker.matching(is_event("audit.anchor"))]
    kept = [json.loads(line) for line in anchors_file.read_text().splitlines()]
    assert [f"{a['seq']}:{a['row_hash']}" for a in kept] == logged
    assert len(logged) == len(set(logged)), "an unchanged head was anchored again"
    assert kept[-1]["seq"] == 4
    ok = scene.rotator("audit", "verify", "--anchors", str(anchors_file))
    assert f"{len(kept)} signed anchors hold (newest 4:" in ok.stdout

    with scene.engine.begin() as conn:
        for table in ("audit_events", "audit_chain_head"):
            conn.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq >= 3"))
        conn.execute(
            sa.text("UPDATE audit_chain_head SET seq = 2, row_hash = (SELECT row_hash FROM audit_events WHERE seq = 2)")
        )
        for table in ("audit_events", "audit_chain_head"):
            conn.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))
    assert scene.rotator("audit", "verify").stdout.startswith("ok: 2 rows checked")
    caught = scene.rotator("audit", "verify", "--anchors", str(anchors_file), expect=1)
    assert "first bad row: seq 3: deleted_after_anchor" in caught.stdout
