"""What requests would read from the environment per request is read once, for Vault's address."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.vault.session import _pooled

ADDRESS = "https://vault.example:8200"


def test_proxies_ca_bundle_and_netrc_come_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """HTTPS_PROXY, REQUESTS_CA_BUNDLE and a netrc entry for Vault's host end up on the session itself."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine vault.example login robot password pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    monkeypatch.setenv("NETRC", str(netrc))
    session = _pooled(4, verify=True, address=ADDRESS)
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.example:3128"
    assert session.verify == "/etc/ssl/bundle.pem"
    assert session.auth == ("robot", "pw")


def test_no_proxy_and_an_explicit_ca_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY naming Vault's host leaves no proxy; vault.ca_cert is kept over REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "vault.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    monkeypatch.setenv("NETRC", "/nonexistent")
    session = _pooled(4, verify="/etc/vault-ca.pem", address=ADDRESS)
    assert session.proxies == {}
    assert session.verify == "/etc/vault-ca.pem"
    assert session.auth is None
