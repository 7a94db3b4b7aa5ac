"""XSUAA tokens: cached, refreshed before expiry, shared between threads, one refresh on 401, X.509."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from service.aicore.client import build_client
from service.aicore.servicekey import ServiceKey, parse_service_key
from service.aicore.tls import tls_context
from service.config import RetryConfig
from service.errors import AICoreAuthError, Unavailable
from service.sandbox.aicore_emulator import AICoreEmulator
from tests.integration.aicore.conftest import Rig, config_json, count


def test_token_is_cached_across_calls(rig: Rig) -> None:
    """Five calls, one token request."""
    client = rig.client()
    for _ in range(5):
        client.list_names()
    assert count(rig, endpoint="token") == 1


def test_token_is_refreshed_before_it_expires(rig: Rig) -> None:
    """With expires_in 600 and a 60 s margin, the token is reused until 540 s, then fetched anew."""
    rig.emulator.token_ttl = 600
    client = rig.client()
    client.list_names()
    rig.clock.advance(539)
    client.list_names()
    assert count(rig, endpoint="token") == 1
    rig.clock.advance(1)
    client.list_names()
    assert count(rig, endpoint="token") == 2
    assert count(rig, endpoint="secrets") == 3  # never a 401 on the way


def test_short_lived_tokens_refresh_at_half_life(rig: Rig) -> None:
    """A token shorter than twice the margin is refreshed at half its lifetime, not on every call."""
    rig.emulator.token_ttl = 40
    tokens = rig.tokens(rig.key(), rig.http())
    first = tokens.token()
    rig.clock.advance(19)
    assert tokens.token() == first
    rig.clock.advance(1)
    assert tokens.token() != first


def test_revoked_token_gets_one_refresh_and_the_call_succeeds(rig: Rig) -> None:
    """A 401 on a cached token: one new token, the same request again, success."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    client = rig.client()
    client.get("my-registry")
    rig.emulator.expire_tokens("tenant-a")
    assert client.edit("my-registry", config_json()).status == 202
    assert count(rig, endpoint="token") == 2
    assert count(rig, method="PATCH") == 2


def test_concurrent_callers_share_one_fetch(rig: Rig) -> None:
    """Ten threads asking at once while XSUAA is slow: one token request, one token for all."""
    tokens = rig.tokens(rig.key(), rig.http())
    rig.emulator.latency = 0.2
    barrier = threading.Barrier(10)
    seen: list[str] = []

    def ask() -> None:
        barrier.wait()
        seen.append(tokens.token())

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 10
    assert len(set(seen)) == 1
    assert count(rig, endpoint="token") == 1


def test_invalidate_drops_only_the_named_token(rig: Rig) -> None:
    """invalidate(stale) after someone already refreshed keeps the fresh token (one refresh per 401 wave)."""
    tokens = rig.tokens(rig.key(), rig.http())
    first = tokens.token()
    tokens.invalidate(first)
    second = tokens.token()
    tokens.invalidate(first)  # a late caller that also saw a 401 with the old token
    assert tokens.token() == second
    assert count(rig, endpoint="token") == 2


def _token_response(body: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json=body))


@pytest.mark.parametrize(
    "body",
    [{"token_type": "bearer"}, {"access_token": "", "expires_in": 60}, {"access_token": "abc"}, ["x"]],
)
def test_token_answer_without_token_is_an_auth_error(rig: Rig, body: object) -> None:
    """A 200 without access_token or expires_in (e.g. a login page) is AICoreAuthError, never a crash."""
    tokens = rig.tokens(rig.key(), rig.http(transport=_token_response(body)))
    with pytest.raises(AICoreAuthError):
        tokens.token()


# --- X.509 (mTLS) --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def mtls_emulator(ca: trustme.CA) -> Iterator[AICoreEmulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    with AICoreEmulator(mtls_context=context) as emulator:
        yield emulator


def _x509_key(
    emulator: AICoreEmulator, cert: trustme.LeafCert, *, key_of: trustme.LeafCert | None = None
) -> ServiceKey:
    data = emulator.add_tenant(
        "x509",
        certificate=cert.cert_chain_pems[0].bytes().decode(),
        private_key=(key_of or cert).private_key_pem.bytes().decode(),
    )
    return parse_service_key(json.dumps(data))


def test_x509_key_gets_tokens_over_mtls(mtls_emulator: AICoreEmulator, ca: trustme.CA, tmp_path: Path) -> None:
    """build_client with an X.509 key presents the certificate to certurl, then edits a secret."""
    key = _x509_key(mtls_emulator, ca.issue_cert("rotator.client.example"))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mtls_emulator.inspect.seed("x509", "my-registry", "{}")
    client = build_client(
        target="x509", key=key, timeout=5.0, retry=RetryConfig(), max_connections=2, ca_file=str(ca_file)
    )
    try:
        assert client.edit("my-registry", config_json()).status == 202
    finally:
        client.close()
    assert mtls_emulator.inspect.request_count("x509", endpoint="token") == 1
    assert mtls_emulator.inspect.stored("x509", "my-registry") == config_json().reveal()


def test_x509_key_pair_that_does_not_match_is_an_auth_error(ca: trustme.CA, mtls_emulator: AICoreEmulator) -> None:
    """A certificate with someone else's private key is refused while building the TLS context, naming no PEM."""
    key = _x509_key(mtls_emulator, ca.issue_cert("a.client.example"), key_of=ca.issue_cert("b.client.example"))
    with pytest.raises(AICoreAuthError) as caught:
        tls_context(key)
    assert "PRIVATE KEY" not in str(caught.value)
    assert "CERTIFICATE" not in str(caught.value)


def test_x509_client_trusting_another_ca_cannot_reach_certurl(
    mtls_emulator: AICoreEmulator, ca: trustme.CA, tmp_path: Path
) -> None:
    """Server certificate not trusted: Unavailable saying so, no httpx exception."""
    key = _x509_key(mtls_emulator, ca.issue_cert("rotator.client.example"))
    other_ca = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    client = build_client(
        target="x509", key=key, timeout=5.0, retry=RetryConfig(attempts=1), max_connections=1, ca_file=str(other_ca)
    )
    try:
        with pytest.raises(Unavailable, match="TLS verification"):
            client.list_names()
    finally:
        client.close()
