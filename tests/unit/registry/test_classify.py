"""Outcome classification of registry answers and network failures (pure)."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from service.config import VerifyConfig
from service.logs import MASK
from service.model import VerificationOutcome as V
from service.model import VerificationResult
from service.registry import permits_write
from service.registry.classify import (
    Finding,
    classify_answer,
    classify_token_status,
    classify_transport_error,
    result_of,
    sanitise,
)


@pytest.mark.parametrize(
    ("status", "error", "canary", "outcome"),
    [
        (200, None, None, V.OK),
        (200, None, "team/app:latest", V.OK),
        (401, None, None, V.AUTH_FAILED),
        (401, "invalid_token", None, V.AUTH_FAILED),
        (401, "invalid_token", "team/app:latest", V.AUTH_FAILED),
        (401, "insufficient_scope", "team/app:latest", V.SCOPE_DENIED),
        (403, None, "team/app:latest", V.SCOPE_DENIED),
        (403, None, None, V.AUTH_FAILED),
        (404, None, "team/app:latest", V.UNEXPECTED),
        (404, None, None, V.UNEXPECTED),
        (429, None, None, V.UNEXPECTED),
        (500, None, "team/app:latest", V.UNEXPECTED),
        (503, None, None, V.UNEXPECTED),
        (302, None, None, V.UNEXPECTED),
    ],
)
def test_classify_answer(status: int, error: str | None, canary: str | None, outcome: V) -> None:
    """Each status (with the challenge's error) maps to one outcome and keeps the status."""
    finding = classify_answer(status, error=error, canary=canary)
    assert finding.outcome == outcome
    assert finding.status == status


def test_answer_details_name_the_canary_and_the_reason() -> None:
    """Details say what was refused and why, in words an operator can act on."""
    assert "team/app:v1" in classify_answer(404, canary="team/app:v1").detail
    assert "verify.canary_repository" in classify_answer(404, canary="team/app:v1").detail
    assert "(invalid_token)" in classify_answer(401, error="invalid_token").detail
    assert "insufficient_scope" in classify_answer(401, error="insufficient_scope", canary="a/b:latest").detail


def test_challenge_error_outside_the_token_shape_is_not_echoed() -> None:
    """A challenge error value that is not a short token never reaches the detail."""
    finding = classify_answer(401, error="<script>alert(1)</script>")
    assert finding.detail == "the registry refused the credential"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, None), (401, V.AUTH_FAILED), (403, V.AUTH_FAILED), (400, V.UNEXPECTED), (500, V.UNEXPECTED)],
)
def test_classify_token_status(status: int, outcome: V | None) -> None:
    """A granted token goes on; a refused credential is auth_failed; anything else unexpected."""
    finding = classify_token_status(status)
    assert (finding.outcome if finding else None) == outcome


def _raised(error: httpx.HTTPError, *chain: BaseException) -> httpx.HTTPError:
    """``error`` raised from each of ``chain`` in turn, as httpx and httpcore chain them."""
    current: BaseException = error
    for cause in chain:
        current.__cause__ = cause
        current = cause
    return error


def test_certificate_verification_failure_is_unreachable_tls() -> None:
    """An untrusted certificate is registry_unreachable with a 'TLS verification failed' detail."""
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate"
    finding = classify_transport_error(_raised(httpx.ConnectError("x"), RuntimeError("httpcore"), cause))
    assert finding == Finding(V.REGISTRY_UNREACHABLE, "TLS verification failed: self-signed certificate")


def test_tls_handshake_failure_is_unreachable_tls() -> None:
    """A handshake that fails for another reason names TLS too."""
    cause = ssl.SSLError(1, "wrong version number")
    cause.reason = "WRONG_VERSION_NUMBER"
    finding = classify_transport_error(_raised(httpx.ConnectError("x"), cause))
    assert finding == Finding(V.REGISTRY_UNREACHABLE, "TLS handshake failed: WRONG_VERSION_NUMBER")


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (_raised(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")), "DNS lookup failed"),
        (_raised(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused")), "connection refused"),
        (httpx.ConnectError("x"), "could not connect"),
        (httpx.ConnectTimeout("x"), "timed out (connect)"),
        (httpx.ReadTimeout("x"), "timed out (read)"),
        (httpx.WriteTimeout("x"), "timed out (write)"),
        (httpx.PoolTimeout("x"), "timed out (connection pool)"),
        (httpx.ReadError("x"), "connection lost"),
    ],
)
def test_network_failures_are_unreachable(error: httpx.HTTPError, detail: str) -> None:
    """DNS, refused connections, timeouts and lost connections are registry_unreachable, each named."""
    assert classify_transport_error(error) == Finding(V.REGISTRY_UNREACHABLE, detail)


@pytest.mark.parametrize(
    "error",
    [httpx.RemoteProtocolError("x"), httpx.LocalProtocolError("x"), httpx.DecodingError("x"), httpx.InvalidURL("x")],
)
def test_other_transport_failures_are_unexpected(error: httpx.HTTPError) -> None:
    """A server that does not speak HTTP properly, or a client-side failure, is unexpected."""
    assert classify_transport_error(error).outcome == V.UNEXPECTED


def test_transport_detail_never_repeats_the_library_message() -> None:
    """The library's message (which could hold a URL with credentials) is not copied into the detail."""
    finding = classify_transport_error(httpx.ConnectError("https://alice:hunter2@host/ failed"))
    assert "hunter2" not in finding.detail
    assert "alice" not in finding.detail


def test_cause_cycles_do_not_hang() -> None:
    """An exception chain that loops is walked once."""
    error = httpx.ConnectError("x")
    other = OSError("y")
    error.__cause__, other.__cause__ = other, error
    assert classify_transport_error(error).detail == "could not connect"


def test_sanitise_masks_given_secrets_and_credential_shapes() -> None:
    """Known secrets are masked by value, and Bearer values or passwords by shape."""
    text = sanitise("pw s3cret in Bearer abcdefghijkl and password=other", "s3cret")
    assert "s3cret" not in text
    assert "abcdefghijkl" not in text
    assert "other" not in text


def test_result_of_sanitises_and_keeps_outcome_and_status() -> None:
    """The port's result carries the registry as configured and a sanitised detail."""
    result = result_of(Finding(V.AUTH_FAILED, "echo tok-123", 401), registry="r.example", secrets=("tok-123", ""))
    assert result == VerificationResult(V.AUTH_FAILED, "r.example", f"echo {MASK}", 401)


@pytest.mark.parametrize(
    ("outcome", "on_unreachable", "permitted"),
    [
        (V.OK, "fail", True),
        (V.SKIPPED, "fail", True),
        (V.REGISTRY_UNREACHABLE, "fail", False),
        (V.REGISTRY_UNREACHABLE, "proceed", True),
        (V.AUTH_FAILED, "proceed", False),
        (V.SCOPE_DENIED, "proceed", False),
        (V.UNEXPECTED, "proceed", False),
    ],
)
def test_permits_write(outcome: V, on_unreachable: str, permitted: bool) -> None:
    """Only ok (or skipped) lets the PATCH go ahead; unreachable too when configured to proceed."""
    policy = VerifyConfig.model_validate({"mode": "registry", "on_unreachable": on_unreachable})
    assert permits_write(VerificationResult(outcome, "r.example"), policy=policy) is permitted
