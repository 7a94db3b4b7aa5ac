"""What requests would read from the environment per request is read once, for Vault's address."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests.utils

from service.vault.transport import Route

ADDRESS = "https://vault.example:8200"


def test_proxies_ca_bundle_and_netrc_come_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """HTTPS_PROXY, REQUESTS_CA_BUNDLE and a netrc entry for Vault's host end up in the route."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine vault.example login robot password pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    monkeypatch.setenv("NETRC", str(netrc))
    route = Route.from_environment(ADDRESS, ca_cert=None)
    assert route == Route(proxy="http://proxy.example:3128", ca_bundle="/etc/ssl/bundle.pem", netrc=("robot", "pw"))


def test_no_proxy_and_an_explicit_ca_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY naming Vault's host leaves no proxy; vault.ca_cert is kept over REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "vault.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    monkeypatch.setenv("NETRC", "/nonexistent")
    route = Route.from_environment(ADDRESS, ca_cert="/etc/vault-ca.pem")
    assert route == Route(proxy=None, ca_bundle="/etc/vault-ca.pem", netrc=None)


def test_without_settings_the_bundle_is_requests_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """No vault.ca_cert and neither CA variable: requests' default bundle (certifi's), and CURL_CA_BUNDLE next."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert Route.from_environment(ADDRESS, ca_cert=None).ca_bundle == requests.utils.DEFAULT_CA_BUNDLE_PATH
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl.pem")
    assert Route.from_environment(ADDRESS, ca_cert=None).ca_bundle == "/etc/ssl/curl.pem"


def test_the_proxy_of_the_address_scheme_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """An http:// Vault uses HTTP_PROXY, not HTTPS_PROXY; ALL_PROXY is the fallback."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://plain.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://tls.example:3128")
    assert Route.from_environment("http://vault.example:8200", ca_cert=None).proxy == "http://plain.example:3128"
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("ALL_PROXY", "http://all.example:3128")
    assert Route.from_environment("http://vault.example:8200", ca_cert=None).proxy == "http://all.example:3128"
