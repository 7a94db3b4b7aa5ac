"""Anchors through the real OpenBao server: Transit signs and verifies, KV v2 keeps each anchor as a version."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service import cli
from service.anchors import Anchor, AnchorError, check_signatures, load_anchors, read_anchor_file
from service.app import App
from service.config import SecretRef, Settings, VaultAuthConfig
from service.errors import SourceError
from service.model import ChainHead
from service.vault import VaultSession
from service.vault.anchors import KvAnchorSink, TransitSigner
from tests.harness import VaultServer
from tests.integration.audit.test_anchored_verify import private_pem
from tests.integration.vault.conftest import ROOT_TOKEN_ENV, unique

HEAD = ChainHead(41, "ab" * 32)


@pytest.fixture
def transit_mount(root: hvac.Client) -> Iterator[str]:
    """A Transit engine of this test's own, with an ed25519 key named rotator-anchors."""
    mount = unique("transit")
    root.sys.enable_secrets_engine("transit", path=mount)
    root.secrets.transit.create_key(name="rotator-anchors", key_type="ed25519", mount_point=mount)
    yield mount
    root.sys.disable_secrets_engine(mount)


def signed(signer: TransitSigner, head: ChainHead = HEAD) -> Anchor:
    unsigned = Anchor(
        seq=head.seq, row_hash=head.row_hash, time="2030-01-02T03:04:05.000000Z", instance="p", key=signer.key_id
    )
    return Anchor(**{**unsigned.document(), "signature": signer.sign(unsigned.payload())})


def test_transit_signs_and_verifies(root_session: VaultSession, transit_mount: str) -> None:
    """A Transit signature verifies through Vault; a changed payload or a garbled signature does not."""
    signer = TransitSigner(session=root_session, mount=transit_mount, key="rotator-anchors")
    anchor = signed(signer)
    assert anchor.signature.startswith("vault:v1:")
    assert signer.verify(anchor.payload(), anchor.signature)
    forged = Anchor(**{**anchor.document(), "seq": 42})
    assert not signer.verify(forged.payload(), forged.signature)
    assert not signer.verify(anchor.payload(), "vault:v1:bm90IGEgc2lnbmF0dXJl")
    with pytest.raises(AnchorError, match="signature does not verify"):
        check_signatures([("vault line 1", forged)], signer=signer, where="vault")


def test_a_missing_transit_key_is_one_clear_error(root_session: VaultSession, transit_mount: str) -> None:
    """Signing with a key that does not exist names the key and what to check."""
    signer = TransitSigner(session=root_session, mount=transit_mount, key="no-such-key")
    with pytest.raises(SourceError) as caught:
        signer.sign(b"payload")
    assert f"Vault Transit key transit:{transit_mount}/no-such-key could not sign" in str(caught.value)
    assert "does the key exist" in str(caught.value)


def test_kv_keeps_every_anchor_as_a_version(root_session: VaultSession, kv2_mount: str, transit_mount: str) -> None:
    """Each write is a new KV v2 version; read_all returns them oldest first, and they load as anchors."""
    signer = TransitSigner(session=root_session, mount=transit_mount, key="rotator-anchors")
    sink = KvAnchorSink(session=root_session, mount=kv2_mount, path="rotator/anchors")
    sink.write(signed(signer, ChainHead(3, "cd" * 32)))
    sink.write(signed(signer))
    versions = sink.read_all()
    assert [(number, document["seq"]) for number, document in versions] == [(1, 3), (2, 41)]
    anchors = load_anchors("vault:", read_vault=lambda _: ("vault kv2", versions))
    assert [where for where, _ in anchors] == ["vault kv2 version 1", "vault kv2 version 2"]
    check_signatures(anchors, signer=signer, where="vault")


def settings(vault_server: VaultServer, **anchors: object) -> Settings:
    """Token auth from the environment, and the given [audit.anchors]."""
    return Settings.model_validate(
        {
            "vault": {"address": vault_server.address, "auth": {"method": "token", "token": {"env": ROOT_TOKEN_ENV}}},
            "audit": {"anchors": anchors},
        }
    )


def test_the_worker_writes_each_moved_head_to_every_sink(
    vault_server: VaultServer, root_auth: object, kv2_mount: str, transit_mount: str, tmp_path: Path
) -> None:
    """App's anchorer (as `run` wires it) signs with Transit and writes the log, the file and KV v2."""
    anchors = {
        "sinks": ["log", "file", "vault"],
        "file": str(tmp_path / "anchors.jsonl"),
        "vault": {"mount": kv2_mount, "path": "rotator/anchors"},
        "signing": {"kind": "transit", "mount": transit_mount, "key": "rotator-anchors"},
    }
    with App(settings(vault_server, **anchors)) as app:
        app.anchorer.head_moved(HEAD)
        app.anchorer.head_moved(HEAD)  # not moved: nothing more
        app.anchorer.head_moved(ChainHead(42, "ef" * 32))
        kept = [document["seq"] for _, document in app.anchor_vault().read_all()]
        in_file = read_anchor_file(tmp_path / "anchors.jsonl")
        check_signatures(in_file, signer=app.anchor_signer, where="file")
    assert kept == [41, 42]
    assert [anchor.seq for _, anchor in in_file] == [41, 42]
    assert app.metrics.registry.get_sample_value("rotator_audit_anchor_failures_total", {"sink": "vault"}) is None


def test_a_failing_vault_sink_is_counted_and_the_others_still_write(
    vault_server: VaultServer, root_auth: object, tmp_path: Path
) -> None:
    """A KV path Vault refuses (no such mount): the file still gets the anchor; the vault sink counts one failure."""
    anchors = {
        "sinks": ["file", "vault"],
        "file": str(tmp_path / "anchors.jsonl"),
        "vault": {"mount": "no-such-mount", "path": "rotator/anchors"},
        "signing": {"kind": "ed25519", "key": {"file": str(_key(tmp_path))}},
    }
    with App(settings(vault_server, **anchors)) as app:
        app.anchorer.head_moved(HEAD)
        failures = app.metrics.registry.get_sample_value("rotator_audit_anchor_failures_total", {"sink": "vault"})
    assert failures == 1
    assert len(read_anchor_file(tmp_path / "anchors.jsonl")) == 1


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "key.pem"
    path.write_text(private_pem())
    return path


def test_verify_with_vault_unreachable_exits_3_on_one_line(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify --anchors vault: with Vault down names the address on one line, exit 3."""
    monkeypatch.setenv(ROOT_TOKEN_ENV, "s.unused")
    config = tmp_path / "rotator.toml"
    config.write_text(
        '[vault]\naddress = "http://127.0.0.1:9"\ntimeout = "2s"\n'
        f'auth = {{method = "token", token = {{env = "{ROOT_TOKEN_ENV}"}}}}\n'
        f'[database]\nurl = "{database_url}"\n'
        '[audit.anchors]\nsigning = {kind = "transit", key = "rotator-anchors"}\n'
    )
    code = cli.main(["audit", "verify", "-c", str(config), "--anchors", "vault:secret/rotator/anchors"])
    captured = capsys.readouterr()
    assert code == 3
    assert captured.err.count("\n") == 1
    assert "cannot connect to Vault at http://127.0.0.1:9" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_transit_signature_verifies_offline_with_the_exported_public_key(
    root: hvac.Client, root_session: VaultSession, transit_mount: str
) -> None:
    """As docs/audit.md says: Ed25519 over the canonical bytes, checkable with the key Vault exports."""
    signer = TransitSigner(session=root_session, mount=transit_mount, key="rotator-anchors")
    anchor = signed(signer)
    exported = root.secrets.transit.read_key(name="rotator-anchors", mount_point=transit_mount)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(exported["data"]["keys"]["1"]["public_key"]))
    public.verify(base64.b64decode(anchor.signature.removeprefix("vault:v1:")), anchor.payload())
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(anchor.signature.removeprefix("vault:v1:")), anchor.payload() + b" ")


@pytest.fixture
def limited_session(
    root: hvac.Client, make_session: Any, make_policy: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[[dict[str, list[str]]], VaultSession]:
    """Logged-in sessions whose tokens have only the given capabilities."""

    def make(paths: dict[str, list[str]]) -> VaultSession:
        token = root.auth.token.create(policies=[make_policy(paths)], ttl="10m")["auth"]["client_token"]
        monkeypatch.setenv("ROTATOR_TEST_LIMITED_TOKEN", token)
        session: VaultSession = make_session(
            VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_LIMITED_TOKEN"))
        )
        session.login()
        return session

    return make


def test_ed25519_transit_anchors_verify_locally_with_the_exported_key(
    root_session: VaultSession, limited_session: Callable[[dict[str, list[str]]], VaultSession], transit_mount: str
) -> None:
    """With "read" on the key but no "update" on transit/verify, anchors still verify: locally, one request."""
    anchor = signed(TransitSigner(session=root_session, mount=transit_mount, key="rotator-anchors"))
    paths = {f"{transit_mount}/keys/rotator-anchors": ["read"]}
    reader = TransitSigner(
        session=limited_session(paths),
        mount=transit_mount,
        key="rotator-anchors",
    )
    assert reader.verify(anchor.payload(), anchor.signature)
    assert not reader.verify(anchor.payload() + b"x", anchor.signature)
    assert not reader.verify(anchor.payload(), anchor.signature.replace("vault:v1:", "vault:v2:"))


def test_other_key_types_and_tokens_without_read_verify_through_vault(
    root: hvac.Client,
    root_session: VaultSession,
    limited_session: Callable[[dict[str, list[str]]], VaultSession],
    transit_mount: str,
) -> None:
    """An ecdsa-p256 key, or a token that may not read the key, is verified by transit/verify."""
    root.secrets.transit.create_key(name="ecdsa-anchors", key_type="ecdsa-p256", mount_point=transit_mount)
    ecdsa = TransitSigner(session=root_session, mount=transit_mount, key="ecdsa-anchors")
    anchor = signed(ecdsa)
    assert ecdsa.verify(anchor.payload(), anchor.signature)
    assert not ecdsa.verify(anchor.payload() + b"x", anchor.signature)
    ed = signed(TransitSigner(session=root_session, mount=transit_mount, key="rotator-anchors"))
    paths = {f"{transit_mount}/verify/rotator-anchors": ["update"]}
    verifier = TransitSigner(
        session=limited_session(paths),
        mount=transit_mount,
        key="rotator-anchors",
    )
    assert verifier.verify(ed.payload(), ed.signature)
    assert not verifier.verify(ed.payload() + b"x", ed.signature)
