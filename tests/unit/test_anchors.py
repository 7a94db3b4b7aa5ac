"""Signed anchors: Ed25519 signing, the sinks, and the Anchorer that writes only a head that moved."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import logs
from service.anchors import (
    Anchor,
    Anchorer,
    AnchorError,
    Ed25519Signer,
    FileSink,
    LogSink,
    check_signatures,
    load_anchors,
    read_anchor_file,
)
from service.errors import ConfigError, RotatorError, VaultUnavailable
from service.metrics import Metrics
from service.model import ChainHead, Trigger
from service.observe import Observer, anchor_failure_reporter
from service.rotation import SweepReport
from tests.fakes import NOW

HEAD = ChainHead(7, "ab" * 32)


def pem(key: Ed25519PrivateKey | None = None) -> str:
    """A fresh Ed25519 private key in PKCS#8 PEM."""
    key = key or Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class BrokenSink:
    """A sink whose storage is gone."""

    name = "vault"

    def write(self, anchor: Anchor) -> None:
        raise VaultUnavailable("cannot connect to Vault at http://127.0.0.1:1")


def anchorer(*sinks: object, signer: Ed25519Signer | None = None) -> tuple[Anchorer, list[tuple[str, str]]]:
    failures: list[tuple[str, str]] = []
    made = Anchorer(
        signer=signer,
        sinks=list(sinks),  # type: ignore[arg-type]
        instance="pod-0",
        clock=lambda: NOW,
        on_failure=lambda sink, error: failures.append((sink, str(error))),
    )
    return made, failures


def test_ed25519_signature_verifies_and_a_changed_anchor_does_not() -> None:
    """A signed anchor verifies with its key; a changed member or another key does not."""
    signer = Ed25519Signer.from_pem(pem(), where="k")
    made, _ = anchorer(signer=signer)
    anchor = made.head_moved(HEAD)
    assert anchor is not None
    assert anchor.key == signer.key_id
    assert signer.verify(anchor.payload(), anchor.signature)
    forged = Anchor(**{**anchor.document(), "seq": 8})
    assert not signer.verify(forged.payload(), forged.signature)
    other = Ed25519Signer.from_pem(pem(), where="k")
    assert not other.verify(anchor.payload(), anchor.signature)


def test_a_public_key_verifies_but_cannot_sign() -> None:
    """The PEM public key of the signing key checks its anchors (for readers without the private key)."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = Ed25519Signer.from_pem(pem(key), where="k")
    verifier = Ed25519Signer.from_pem(public.decode(), where="k")
    payload = b"payload"
    assert verifier.key_id == signer.key_id
    assert verifier.verify(payload, signer.sign(payload))
    with pytest.raises(ConfigError):
        verifier.sign(payload)


def test_not_a_key_is_one_config_line() -> None:
    """Text that is no Ed25519 PEM key is a ConfigError naming where it was configured."""
    with pytest.raises(ConfigError) as caught:
        Ed25519Signer.from_pem("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", where="audit.x")
    assert str(caught.value.issues[0].location) == "audit.x"


def test_only_a_head_that_moved_is_anchored(tmp_path: Path) -> None:
    """The same head twice writes one anchor; a new head writes another."""
    made, failures = anchorer(FileSink(tmp_path / "a.jsonl"), signer=Ed25519Signer.from_pem(pem(), where="k"))
    assert made.head_moved(HEAD) is not None
    assert made.head_moved(HEAD) is None
    assert made.head_moved(ChainHead(9, "cd" * 32)) is not None
    assert [a.seq for _, a in read_anchor_file(tmp_path / "a.jsonl")] == [7, 9]
    assert failures == []


def test_a_failing_sink_is_reported_and_the_others_still_write(tmp_path: Path) -> None:
    """Vault down: the file still gets the anchor, the failure is reported, and the head is tried again."""
    made, failures = anchorer(
        BrokenSink(), FileSink(tmp_path / "a.jsonl"), signer=Ed25519Signer.from_pem(pem(), where="k")
    )
    made.head_moved(HEAD)
    made.head_moved(HEAD)
    assert [sink for sink, _ in failures] == ["vault", "vault"]
    assert len(read_anchor_file(tmp_path / "a.jsonl")) == 2


def test_failure_reporter_counts_and_logs_one_line() -> None:
    """A sink failure increments rotator_audit_anchor_failures{sink} and logs audit.anchor_failed."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    metrics = Metrics()
    report = anchor_failure_reporter(metrics)
    report("file", PermissionError(13, "Permission denied"))
    report("vault", VaultUnavailable("cannot connect"))
    assert metrics.registry.get_sample_value("rotator_audit_anchor_failures_total", {"sink": "vault"}) == 1
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line["sink"], line["error"]) for line in lines] == [
        ("audit.anchor_failed", "file", "PermissionError"),
        ("audit.anchor_failed", "vault", "vault_unavailable"),
    ]


def test_log_sink_keeps_the_anchor_line() -> None:
    """The log sink writes audit.anchor with SEQ:HASH and the signed members."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    made, _ = anchorer(LogSink(), signer=Ed25519Signer.from_pem(pem(), where="k"))
    made.head_moved(HEAD)
    (line,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert line["event"] == "audit.anchor"
    assert line["anchor"] == f"7:{'ab' * 32}"
    assert line["signature"].startswith("ed25519:")
    assert line["time"] == "2026-11-29T12:00:00.000000Z"


def test_a_bad_line_in_the_anchor_file_is_named(tmp_path: Path) -> None:
    """A torn line, or a JSON object that is no anchor, is refused with the file and line number."""
    path = tmp_path / "a.jsonl"
    made, _ = anchorer(FileSink(path), signer=Ed25519Signer.from_pem(pem(), where="k"))
    made.head_moved(HEAD)
    with path.open("a") as handle:
        handle.write('{"seq": 8, "row_hash"\n')
    with pytest.raises(AnchorError, match=r"a\.jsonl line 2: not JSON"):
        read_anchor_file(path)
    path.write_text('{"seq": 8}\n')
    with pytest.raises(AnchorError, match=r"line 1: not an anchor"):
        load_anchors(str(path), read_vault=lambda _: ("", []))


def test_check_signatures_refuses_forged_unsigned_other_key_and_empty() -> None:
    """Each reason to distrust an anchor is one line naming where it came from."""
    signer = Ed25519Signer.from_pem(pem(), where="k")
    made, _ = anchorer(signer=signer)
    good = made.head_moved(HEAD)
    assert good is not None
    check_signatures([("f line 1", good)], signer=signer, where="f")
    cases = {
        "signature does not verify": Anchor(**{**good.document(), "row_hash": "cd" * 32}),
        "is not signed": Anchor(**{**good.document(), "signature": ""}),
        "was signed by key": Anchor(**{**good.document(), "key": "ed25519:0000"}),
    }
    for message, anchor in cases.items():
        with pytest.raises(AnchorError, match=message) as caught:
            check_signatures([("f line 1", anchor)], signer=signer, where="f")
        assert str(caught.value).startswith("f line 1: ")
    with pytest.raises(AnchorError, match="holds no anchor"):
        check_signatures([], signer=signer, where="f")
    assert isinstance(AnchorError("x"), RotatorError)


def test_the_worker_logs_an_anchor_only_when_the_head_moved() -> None:
    """Sweeps that leave the chain head where it was add no audit.anchor line (they used to add one each)."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    observer = Observer(metrics=Metrics(), clock=lambda: NOW)
    for head in (HEAD, HEAD, HEAD, ChainHead(8, "cd" * 32)):
        observer.sweep_finished(SweepReport(run_id="r", trigger=Trigger.SCHEDULE, results=[], head=head, duration_ms=1))
    anchors = [json.loads(line)["anchor"] for line in out.getvalue().splitlines() if '"audit.anchor"' in line]
    assert anchors == [f"7:{'ab' * 32}", f"8:{'cd' * 32}"]


class CrashingSink:
    """A sink with a bug: an error no adapter translated."""

    name = "file"

    def write(self, anchor: Anchor) -> None:
        raise KeyError("data")


def test_an_unexpected_error_in_a_sink_is_reported_by_class_only(tmp_path: Path) -> None:
    """A sink that raises something untranslated is still just a counted failure; the other sinks write."""
    made, failures = anchorer(
        CrashingSink(), FileSink(tmp_path / "a.jsonl"), signer=Ed25519Signer.from_pem(pem(), where="k")
    )
    assert made.head_moved(HEAD) is not None
    assert failures == [("file", "unexpected KeyError while anchoring")]
    assert len(read_anchor_file(tmp_path / "a.jsonl")) == 1
