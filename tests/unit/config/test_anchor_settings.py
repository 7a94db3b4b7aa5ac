"""[audit.anchors]: sinks, the file, the KV path and the signing key, refused with the key named when incomplete."""

from __future__ import annotations

from pathlib import Path

from service.config import Ed25519Signing, TransitSigning, load_settings, local_ref_issues
from tests.unit.config.test_settings import MINIMAL, problems, write


def test_default_is_the_log_unsigned() -> None:
    """Without [audit.anchors] the head goes to the log only, unsigned, as before."""
    settings = load_settings(None, environ={})
    assert settings.audit.anchors.sinks == ["log"]
    assert settings.audit.anchors.signing is None


def test_transit_and_ed25519_signing_parse(tmp_path: Path) -> None:
    """signing is either a Transit key by name or an Ed25519 key by reference."""
    transit = MINIMAL + '[audit.anchors]\nsinks = ["vault"]\nsigning = {kind = "transit", key = "rotator-anchors"}\n'
    settings = load_settings(write(tmp_path, transit), environ={})
    assert settings.audit.anchors.signing == TransitSigning(kind="transit", mount="transit", key="rotator-anchors")
    assert (settings.audit.anchors.vault.mount, settings.audit.anchors.vault.path) == ("secret", "rotator/anchors")
    ed25519 = MINIMAL + '[audit.anchors]\nsigning = {kind = "ed25519", key = {file = "/nonexistent/k.pem"}}\n'
    settings = load_settings(write(tmp_path, ed25519), environ={})
    assert isinstance(settings.audit.anchors.signing, Ed25519Signing)
    issues = local_ref_issues(settings, environ={})
    assert [(i.location, i.problem) for i in issues if "anchors" in i.location] == [
        ("audit.anchors.signing.key", "file /nonexistent/k.pem does not exist")
    ]


def test_incomplete_anchor_settings_name_the_key(tmp_path: Path) -> None:
    """A file sink without a file, a signed sink without a key, or an unknown kind is refused under audit.anchors."""
    cases = {
        '[audit.anchors]\nsinks = ["file"]\nsigning = {kind = "transit", key = "k"}\n': 'the "file" sink needs file',
        '[audit.anchors]\nsinks = ["vault"]\n': "the file and vault sinks keep signed anchors: set signing",
        '[audit.anchors]\nsigning = {kind = "rsa", key = "k"}\n': "audit.anchors.signing",
        '[audit.anchors]\nsinks = ["s3"]\n': "audit.anchors.sinks",
    }
    for text, expected in cases.items():
        found = problems(write(tmp_path, MINIMAL + text))
        assert any(expected in line and "audit.anchors" in line for line in found), (text, found)
