"""Parsing the service key JSON that SAP BTP hands out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.aicore.servicekey import ServiceKeyError, parse_service_key

SECRET_KEY: dict[str, Any] = {
    "clientid": "sb-1234!b5|aicore!b540",
    "clientsecret": "s3cr3t-value-xyz",
    "url": "https://tenant.authentication.eu10.hana.ondemand.com",
    "identityzone": "tenant",
    "serviceurls": {"AI_API_URL": "https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com/"},
}
X509_KEY: dict[str, Any] = {
    "clientid": "sb-1234!b5|aicore!b540",
    "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    "certurl": "https://tenant.authentication.cert.eu10.hana.ondemand.com",
    "url": "https://tenant.authentication.eu10.hana.ondemand.com",
    "serviceurls": {"AI_API_URL": "https://api.ai.example.com"},
}


def test_client_secret_key() -> None:
    """clientid, clientsecret, url and AI_API_URL become a key with token URL and API host."""
    key = parse_service_key(json.dumps(SECRET_KEY))
    assert key.client_id == "sb-1234!b5|aicore!b540"
    assert key.client_secret == "s3cr3t-value-xyz"
    assert key.token_url == "https://tenant.authentication.eu10.hana.ondemand.com/oauth/token"
    assert key.api_url == "https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com"
    assert key.api_host == "api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com"
    assert not key.mtls


def test_x509_key_uses_certurl() -> None:
    """The X.509 variant fetches tokens from certurl with the certificate and key."""
    key = parse_service_key(json.dumps(X509_KEY).encode())
    assert key.mtls
    assert key.token_url == "https://tenant.authentication.cert.eu10.hana.ondemand.com/oauth/token"
    assert key.client_secret is None
    assert key.certificate is not None
    assert key.private_key is not None


def test_x509_key_accepts_the_certUrl_spelling() -> None:  # noqa: N802 (the field's own spelling)
    """Some keys spell it certUrl."""
    data = {k: v for k, v in X509_KEY.items() if k != "certurl"} | {"certUrl": "https://cert.example.com"}
    assert parse_service_key(json.dumps(data)).token_url == "https://cert.example.com/oauth/token"


def test_repr_masks_every_credential() -> None:
    """repr shows the client id and API URL, never the secret, certificate or key."""
    for data in (SECRET_KEY, X509_KEY):
        text = repr(parse_service_key(json.dumps(data)))
        assert "sb-1234" in text
        assert "s3cr3t" not in text
        assert "MIIB" not in text
        assert "MIIE" not in text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"clientid": ""}, "clientid"),
        ({"clientsecret": None}, "clientsecret"),
        ({"url": "ftp://x"}, "url"),
        ({"serviceurls": {}}, "serviceurls.AI_API_URL"),
        ({"serviceurls": "x"}, "serviceurls"),
    ],
)
def test_broken_fields_are_named(change: dict[str, Any], field: str) -> None:
    """A missing or malformed field is named in the error, and no value is echoed."""
    with pytest.raises(ServiceKeyError) as caught:
        parse_service_key(json.dumps(SECRET_KEY | change))
    assert field in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_x509_key_without_certurl_is_refused() -> None:
    """An X.509 key needs certurl."""
    data = {k: v for k, v in X509_KEY.items() if k != "certurl"}
    with pytest.raises(ServiceKeyError, match="certurl"):
        parse_service_key(json.dumps(data))


@pytest.mark.parametrize("text", ["not json", "[]", b"\xff\xfe"])
def test_not_a_json_object_is_refused(text: str | bytes) -> None:
    """Garbage and non-objects are refused without quoting them."""
    with pytest.raises(ServiceKeyError):
        parse_service_key(text)
