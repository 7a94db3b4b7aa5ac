"""`audit verify --anchors`: signed anchors written after each batch catch what the database alone cannot."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine, make_url

from service import cli
from service.anchors import Anchorer, Ed25519Signer, FileSink, load_anchors
from service.audit import commands
from service.audit.chain import GENESIS, row_hash
from service.audit.store import AuditStore
from service.model import EventType
from tests.fakes import NOW
from tests.integration.audit.conftest import make_event
from tests.integration.audit.test_verify import _rehash_from, _tamper


def private_pem() -> str:
    """A fresh Ed25519 private key in PKCS#8 PEM."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "anchor-key.pem"
    path.write_text(private_pem())
    path.chmod(0o600)
    return path


@pytest.fixture
def anchors_file(tmp_path: Path, store: AuditStore, key_file: Path) -> Path:
    """Six rows in three batches, the head signed into a file after each batch, as the worker does."""
    path = tmp_path / "anchors.jsonl"
    anchorer = Anchorer(
        signer=Ed25519Signer.from_pem(key_file.read_text(), where="key"),
        sinks=[FileSink(path)],
        instance="pod-0",
        clock=lambda: NOW,
        on_failure=lambda sink, error: pytest.fail(f"{sink}: {error}"),
    )
    for batch in (
        [make_event(secret="one-sec"), make_event(event=EventType.APPLIED, intent_seq=1)],
        [make_event(secret="two-sec")],
        [make_event(secret="three-sec"), make_event(), make_event(event=EventType.FAILED)],
    ):
        store.append(batch)
        head = store.head()
        assert head is not None
        anchorer.head_moved(head)
    return path


def verify(engine: Engine, anchors_file: Path, key_file: Path, **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    signer = Ed25519Signer.from_pem(key_file.read_text(), where="key")
    anchors = load_anchors(str(anchors_file), read_vault=lambda _: ("", []))
    code = commands.audit_verify(
        engine, anchor=None, out=out, anchors=anchors, anchors_from=str(anchors_file), signer=signer, **options
    )
    return code, out.getvalue()


def test_intact_chain_holds_every_anchor(engine: Engine, anchors_file: Path, key_file: Path) -> None:
    """Three signed anchors, all held by the chain: ok, and the newest is named."""
    code, text = verify(engine, anchors_file, key_file)
    assert code == 0
    assert text.startswith("ok: 6 rows checked; head 6:")
    assert "; 3 signed anchors hold (newest 6:" in text


def test_full_rewrite_is_caught_without_a_hand_picked_anchor(
    engine: Engine, anchors_file: Path, key_file: Path
) -> None:
    """Every row rewritten and rehashed from row 1, head forged: verify alone passes, --anchors does not."""
    with engine.begin() as conn:
        for table in ("audit_events", "audit_chain_head"):
            conn.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET registry_username = 'attacker'"))
        first = conn.execute(sa.select(sa.text("*")).select_from(sa.text("audit_events")).where(sa.text("seq = 1")))
        row = dict(first.mappings().one())
        digest = row_hash(GENESIS, row)
        conn.execute(sa.text("UPDATE audit_events SET row_hash = :h WHERE seq = 1"), {"h": digest})
        *_, new_head = _rehash_from(conn, 2)
        conn.execute(sa.text("UPDATE audit_chain_head SET row_hash = :h"), {"h": new_head.row_hash})
        for table in ("audit_events", "audit_chain_head"):
            conn.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))
    plain = io.StringIO()
    assert commands.audit_verify(engine, anchor=None, out=plain) == 0
    code, text = verify(engine, anchors_file, key_file)
    assert code == 1
    assert "first bad row: seq 2: changed: row 2's row_hash differs from the anchor" in text


def test_deleted_newest_rows_with_a_forged_head_are_caught(engine: Engine, anchors_file: Path, key_file: Path) -> None:
    """Rows 5 and 6 deleted and the head row moved back: the newest signed anchor names seq 6."""
    with engine.connect() as conn:
        row4 = conn.execute(sa.text("SELECT row_hash FROM audit_events WHERE seq = 4")).scalar_one()
    _tamper(
        engine,
        "DELETE FROM audit_events WHERE seq >= 5",
        sa.text("UPDATE audit_chain_head SET seq = 4, row_hash = :h").bindparams(h=row4),
    )
    assert commands.audit_verify(engine, anchor=None, out=io.StringIO()) == 0
    code, text = verify(engine, anchors_file, key_file, as_json=True)
    document = json.loads(text)
    assert code == 1
    assert document["problem"]["kind"] == "deleted_after_anchor"
    assert document["newest_anchor"]["seq"] == 6
    assert document["anchors_checked"] == 3


def test_forged_anchor_is_refused(engine: Engine, anchors_file: Path, key_file: Path) -> None:
    """An anchor edited to match a rewritten chain no longer verifies: refused, the chain not trusted."""
    lines = anchors_file.read_text().splitlines()
    forged = json.loads(lines[-1]) | {"row_hash": "0" * 64}
    anchors_file.write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    code, text = verify(engine, anchors_file, key_file)
    assert code == 1
    expected = f"{anchors_file} line 3: anchor 6's signature does not verify: it was forged or altered"
    assert text == f"FAILED: anchor refused: {expected}\n"


def test_wrong_signing_key_is_one_line(engine: Engine, anchors_file: Path, tmp_path: Path) -> None:
    """Checking with another key than the one that signed names both keys on one line."""
    other = tmp_path / "other.pem"
    other.write_text(private_pem())
    code, text = verify(engine, anchors_file, other)
    assert code == 1
    assert len(text.splitlines()) == 1
    assert "line 1: anchor 2 was signed by key 'ed25519:" in text
    assert "not the configured 'ed25519:" in text


def _config(tmp_path: Path, database_url: str, key_file: Path, extra: str = "") -> Path:
    url = make_url(database_url)
    assert url.password is None, "the harness's database URL carries no password"
    path = tmp_path / "rotator.toml"
    path.write_text(
        f'[database]\nurl = "{url.render_as_string()}"\n\n'
        f'[audit.anchors]\nsinks = ["log"]\nsigning = {{kind = "ed25519", key = {{file = "{key_file}"}}}}\n{extra}'
    )
    return path


def test_cli_exit_codes_for_a_bad_line_and_for_tampering(  # noqa: PLR0917 (fixtures)
    engine: Engine,
    database_url: str,
    anchors_file: Path,
    key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """rotator audit verify --anchors: 0 intact; 1 with one line for a bad line in the file; never a traceback."""
    config = str(_config(tmp_path, database_url, key_file))
    assert cli.main(["audit", "verify", "-c", config, "--anchors", str(anchors_file)]) == 0
    assert "3 signed anchors hold" in capsys.readouterr().out
    with anchors_file.open("a") as handle:
        handle.write("{not json\n")
    assert cli.main(["audit", "verify", "-c", config, "--anchors", str(anchors_file)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: {anchors_file} line 4: not JSON (a torn or edited line)\n"
    assert "Traceback" not in captured.out + captured.err
