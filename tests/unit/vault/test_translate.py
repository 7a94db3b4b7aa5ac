"""Library exceptions become service errors that say what to do and carry no response body.

The exceptions are hvac's and urllib3's own classes (and our transport's ``Redirected``),
built the way hvac builds them from a response (``VaultError.from_status``); nothing is mocked.
"""

from __future__ import annotations

import hvac.exceptions
import pytest
import urllib3.exceptions

from service.errors import (
    DependencyUnavailable,
    SourceError,
    SourceNotFound,
    VaultAuthError,
    VaultPermissionDenied,
    VaultSealed,
    VaultUnavailable,
)
from service.vault.mapping import Location
from service.vault.translate import login_refused, translate
from service.vault.transport import Redirected

ADDRESS = "https://vault.example:8200"
AT = Location(kind="kv2", mount="secret", path="acme")
BODY = '{"errors": ["SENTINEL-BODY"], "data": {"password": "SENTINEL-VALUE"}}'


def from_status(status: int, errors: list[str] | None = None) -> hvac.exceptions.VaultError:
    """An exception as hvac raises it for a response with this status and a sentinel body."""
    return hvac.exceptions.VaultError.from_status(
        status,
        BODY,
        errors=errors,
        method="get",
        url=f"{ADDRESS}/v1/secret/data/acme",
        text=BODY,
        json={"errors": errors or [], "data": {"password": "SENTINEL-VALUE"}},
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, SourceError),
        (403, VaultPermissionDenied),
        (404, SourceNotFound),
        (405, SourceError),
        (429, VaultUnavailable),
        (500, VaultUnavailable),
        (502, VaultUnavailable),
        (503, VaultSealed),
    ],
)
def test_status_maps_to_a_service_error_without_the_body(status: int, expected: type[SourceError]) -> None:
    """Each status becomes its service error; the response body never reaches str() or repr()."""
    error = translate(from_status(status), at=AT, address=ADDRESS)

    assert type(error) is expected
    assert "SENTINEL" not in str(error)
    assert "SENTINEL" not in repr(error)
    assert (error.mount, error.path) == ("secret", "acme")


def test_permission_denied_carries_the_policy_path() -> None:
    """403 names the KV v2 data/ path and the read capability."""
    error = translate(from_status(403), at=AT, address=ADDRESS)

    assert isinstance(error, VaultPermissionDenied)
    assert error.policy_path == "secret/data/acme"
    assert 'needs capability "read" on path "secret/data/acme" (KV v2 reads go through data/)' in str(error)


def test_missing_mount_is_named() -> None:
    """404 with "no handler for route" says that nothing is mounted there."""
    error = translate(from_status(404, ['no handler for route "secret/data/acme"']), at=AT, address=ADDRESS)

    assert str(error) == "kv2 secret/acme not found: no secrets engine is mounted at secret/; check the mount"


def test_server_trouble_is_a_dependency_failure() -> None:
    """5xx and 429 are retryable dependency failures; 400 is not."""
    assert isinstance(translate(from_status(500), at=AT, address=ADDRESS), DependencyUnavailable)
    assert isinstance(translate(from_status(503), at=AT, address=ADDRESS), DependencyUnavailable)
    assert not isinstance(translate(from_status(400), at=AT, address=ADDRESS), DependencyUnavailable)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (urllib3.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), "TLS verification failed for Vault at"),
        (urllib3.exceptions.ConnectTimeoutError(None, "slow"), "did not answer in time"),
        (urllib3.exceptions.ReadTimeoutError(None, "/v1/x", "slow"), "did not answer in time"),  # type: ignore[arg-type]  # no pool here
        (urllib3.exceptions.NewConnectionError(None, "refused"), "cannot connect to Vault at"),  # type: ignore[arg-type]  # no connection here
        (urllib3.exceptions.NameResolutionError("vault.example", None, OSError("no such host")), "cannot connect"),  # type: ignore[arg-type]  # no connection here
        (urllib3.exceptions.ProxyError("Unable to connect to proxy", OSError("refused")), "cannot connect to Vault"),
        (urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError()), "cannot connect to Vault"),
        (OSError("no certificate in the bundle"), "is vault.ca_cert readable?"),
        (urllib3.exceptions.DecodeError("garbage"), "failed (DecodeError)"),
        (Redirected(status=307, location="https://other.example:8200/v1/x?SENTINEL=1"), "redirect (HTTP 307 to"),
    ],
)
def test_transport_failures_are_vault_unavailable(error: BaseException, message: str) -> None:
    """TLS, timeouts, refused connections, redirects and unreadable CA bundles are VaultUnavailable with a hint."""
    translated = translate(error, at=AT, address=ADDRESS)

    assert isinstance(translated, VaultUnavailable)
    assert message in str(translated)
    assert ADDRESS in str(translated)
    assert "SENTINEL" not in str(translated)


def test_a_redirect_names_only_the_origin() -> None:
    """A redirect's message names the status and the scheme, host and port it pointed at, never its path or query."""
    translated = translate(
        Redirected(status=307, location="https://other.example:8200/v1/x?a=1"), at=AT, address=ADDRESS
    )

    assert "(HTTP 307 to https://other.example:8200)" in str(translated)
    assert "/v1/x" not in str(translated)


@pytest.mark.parametrize(
    ("method", "hint"),
    [
        ("token", "give the service a valid token"),
        ("approle", "check vault.auth.role_id, the secret id"),
        ("jwt", "check vault.auth.role, the JWT"),
        ("kubernetes", "the service account bound to it"),
    ],
)
def test_refused_login_names_method_mount_and_hint(method: str, hint: str) -> None:
    """A refused login is VaultAuthError naming the auth mount, with a hint per method."""
    error = login_refused(from_status(400), method=method, mount=f"{method}-prod", address=ADDRESS)

    assert isinstance(error, VaultAuthError)
    assert f"refused the {method} login at auth/{method}-prod (HTTP 400)" in str(error)
    assert hint in str(error)
    assert error.mount == f"auth/{method}-prod"
    assert "SENTINEL" not in str(error)


def test_login_on_sealed_vault_is_sealed_not_auth() -> None:
    """A login answered with 503 is VaultSealed (retry), not an auth error (fix config)."""
    assert isinstance(login_refused(from_status(503), method="approle", mount="approle", address=ADDRESS), VaultSealed)
