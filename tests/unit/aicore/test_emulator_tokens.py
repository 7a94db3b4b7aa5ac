"""The emulator's XSUAA token endpoint: client secret (form or Basic) and X.509 client certificates."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme

from service.sandbox.aicore_emulator import AICoreEmulator
from tests.unit.aicore.conftest import PLAIN, FakeClock

GRANT = {"grant_type": "client_credentials"}


def token_request(key: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(key["url"] + "/oauth/token", timeout=5, verify=PLAIN, **kwargs)


def api_status(key: dict[str, Any], token: str) -> int:
    url = key["serviceurls"]["AI_API_URL"] + "/v2/admin/dockerRegistrySecrets"
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, verify=PLAIN).status_code


def test_form_credentials_get_a_bearer_token(key: dict[str, Any], emulator: AICoreEmulator) -> None:
    """client_id and client_secret in the form body: 200 with a bearer token, expires_in = token_ttl."""
    response = token_request(key, data=GRANT | {"client_id": key["clientid"], "client_secret": key["clientsecret"]})
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == emulator.token_ttl
    assert api_status(key, body["access_token"]) == 200


def test_http_basic_credentials_get_a_token(key: dict[str, Any]) -> None:
    """HTTP Basic with the client id and secret works as well."""
    response = token_request(key, data=GRANT, auth=(key["clientid"], key["clientsecret"]))
    assert response.status_code == 200
    assert api_status(key, response.json()["access_token"]) == 200


def test_tokens_are_jwt_shaped(key: dict[str, Any]) -> None:
    """Three base64url parts, as XSUAA's JWTs (so log redaction meets the real shape)."""
    token = token_request(key, data=GRANT, auth=(key["clientid"], key["clientsecret"])).json()["access_token"]
    assert token.startswith("eyJ")
    assert token.count(".") == 2


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": "wrong", "client_secret": "whatever"},
        {"client_secret": "missing-id"},
        {},
    ],
)
def test_wrong_or_missing_credentials_are_401(key: dict[str, Any], credentials: dict[str, str]) -> None:
    """Bad credentials answer 401 in XSUAA's own error shape."""
    response = token_request(key, data=GRANT | credentials)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_wrong_secret_for_the_right_client_is_401(key: dict[str, Any]) -> None:
    """The right client id with a wrong secret is refused."""
    response = token_request(key, data=GRANT | {"client_id": key["clientid"], "client_secret": "not-it"})
    assert response.status_code == 401


def test_another_tenants_credentials_are_refused(key: dict[str, Any], emulator: AICoreEmulator) -> None:
    """Each tenant has its own client credentials."""
    other = emulator.add_tenant("tenant-b")
    response = token_request(key, data=GRANT, auth=(other["clientid"], other["clientsecret"]))
    assert response.status_code == 401


def test_only_client_credentials_grant(key: dict[str, Any]) -> None:
    """Other grant types: 400 unsupported_grant_type."""
    form = {"grant_type": "password", "client_id": key["clientid"], "client_secret": key["clientsecret"]}
    response = token_request(key, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_request_must_be_a_form(key: dict[str, Any]) -> None:
    """A JSON body is not an OAuth token request."""
    response = token_request(key, json=GRANT | {"client_id": key["clientid"], "client_secret": key["clientsecret"]})
    assert response.status_code == 400


def test_token_ttl_knob_sets_expires_in(key: dict[str, Any], emulator: AICoreEmulator, clock: FakeClock) -> None:
    """A shorter token_ttl is reported in expires_in and enforced by the API."""
    emulator.token_ttl = 30
    body = token_request(key, data=GRANT, auth=(key["clientid"], key["clientsecret"])).json()
    assert body["expires_in"] == 30
    clock.advance(30)
    assert api_status(key, body["access_token"]) == 401


def test_fixed_credentials_from_the_caller(emulator: AICoreEmulator) -> None:
    """add_tenant takes given client credentials (the tenants file uses this)."""
    key = emulator.add_tenant("fixed", client_id="my-client", client_secret="my-secret-value")
    assert (key["clientid"], key["clientsecret"]) == ("my-client", "my-secret-value")
    assert token_request(key, data=GRANT, auth=("my-client", "my-secret-value")).status_code == 200


# --- X.509 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def mtls_emulator(ca: trustme.CA, clock: FakeClock) -> Iterator[AICoreEmulator]:
    """An emulator with an HTTPS token listener that requires client certificates from ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    with AICoreEmulator(clock=clock, mtls_context=context) as running:
        yield running


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


def x509_tenant(
    emulator: AICoreEmulator, ca: trustme.CA, name: str = "x509"
) -> tuple[dict[str, Any], trustme.LeafCert]:
    cert = ca.issue_cert(f"{name}.client.example")
    key = emulator.add_tenant(
        name,
        certificate=cert.cert_chain_pems[0].bytes().decode(),
        private_key=cert.private_key_pem.bytes().decode(),
    )
    return key, cert


def mtls_token_request(key: dict[str, Any], context: ssl.SSLContext) -> httpx.Response:
    form = GRANT | {"client_id": key["clientid"]}
    return httpx.post(key["certurl"] + "/oauth/token", data=form, verify=context, timeout=5)


def test_x509_service_key_points_at_the_mtls_listener(mtls_emulator: AICoreEmulator, ca: trustme.CA) -> None:
    """An X.509 tenant's key has certificate, key and an https certurl, and no clientsecret."""
    key, _ = x509_tenant(mtls_emulator, ca)
    assert key["certurl"].startswith(mtls_emulator.mtls_url)
    assert key["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in key["key"]
    assert "clientsecret" not in key


def test_registered_client_certificate_gets_a_token(mtls_emulator: AICoreEmulator, ca: trustme.CA) -> None:
    """The certificate named by the key, over mTLS, with the client id: 200 and a token the API accepts."""
    key, cert = x509_tenant(mtls_emulator, ca)
    response = mtls_token_request(key, client_context(ca, cert))
    assert response.status_code == 200
    assert api_status(key, response.json()["access_token"]) == 200


def test_another_certificate_of_the_same_ca_is_401(mtls_emulator: AICoreEmulator, ca: trustme.CA) -> None:
    """A valid certificate that is not the tenant's own is refused."""
    key, _ = x509_tenant(mtls_emulator, ca)
    _, other_cert = x509_tenant(mtls_emulator, ca, name="other")
    assert mtls_token_request(key, client_context(ca, other_cert)).status_code == 401


def test_no_client_certificate_fails_the_handshake(mtls_emulator: AICoreEmulator, ca: trustme.CA) -> None:
    """Without a client certificate the TLS handshake is refused: no HTTP answer at all."""
    key, _ = x509_tenant(mtls_emulator, ca)
    with pytest.raises(httpx.TransportError):
        mtls_token_request(key, client_context(ca, None))


def test_x509_tenant_has_no_secret_login(mtls_emulator: AICoreEmulator, ca: trustme.CA) -> None:
    """The plain token endpoint refuses an X.509 tenant (it has no client secret)."""
    key, _ = x509_tenant(mtls_emulator, ca)
    response = token_request(key, data=GRANT | {"client_id": key["clientid"], "client_secret": ""})
    assert response.status_code == 401


def test_secret_tenant_cannot_use_the_mtls_listener(mtls_emulator: AICoreEmulator, ca: trustme.CA) -> None:
    """A client-secret tenant presenting some valid certificate on the mTLS listener is refused."""
    key = mtls_emulator.add_tenant("plain")
    _, cert = x509_tenant(mtls_emulator, ca)
    form = GRANT | {"client_id": key["clientid"], "client_secret": key["clientsecret"]}
    url = mtls_emulator.mtls_url + "/uaa/plain/oauth/token"
    response = httpx.post(url, data=form, verify=client_context(ca, cert), timeout=5)
    assert response.status_code == 401


def test_x509_tenant_needs_an_mtls_listener(emulator: AICoreEmulator, ca: trustme.CA) -> None:
    """Adding an X.509 tenant to an emulator without mtls_context fails at once."""
    with pytest.raises(RuntimeError, match="mtls_context"):
        x509_tenant(emulator, ca)
