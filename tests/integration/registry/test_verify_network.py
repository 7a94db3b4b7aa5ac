"""Verification when the registry cannot be reached or misbehaves: classified results, never exceptions."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from service.model import VerificationOutcome as V
from service.registry import RegistryVerifier
from service.sandbox.processes import free_port
from service.sandbox.registry_emulator import RegistryEmulator
from tests.integration.registry.conftest import credential, policy, server_context


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_closed_port_is_unreachable(verifier: RegistryVerifier) -> None:
    """Nothing listening: registry_unreachable, 'connection refused'."""
    result = verifier.verify(credential(), registry=f"http://127.0.0.1:{free_port()}", policy=policy())
    assert (result.outcome, result.detail, result.status) == (V.REGISTRY_UNREACHABLE, "connection refused", None)


def test_unknown_host_is_unreachable(verifier: RegistryVerifier) -> None:
    """A name that cannot resolve (.invalid, RFC 6761): registry_unreachable, 'DNS lookup failed'."""
    result = verifier.verify(credential(), registry="registry.invalid", policy=policy())
    assert (result.outcome, result.detail) == (V.REGISTRY_UNREACHABLE, "DNS lookup failed")


def test_silent_registry_times_out_within_the_policy_timeout(verifier: RegistryVerifier, silent_port: int) -> None:
    """A server that never answers is unreachable after the policy's timeout, not later."""
    started = time.monotonic()
    result = verifier.verify(credential(), registry=f"http://127.0.0.1:{silent_port}", policy=policy(timeout="300ms"))
    elapsed = time.monotonic() - started
    assert (result.outcome, result.detail) == (V.REGISTRY_UNREACHABLE, "timed out (read)")
    assert 0.25 < elapsed < 2.0


def test_untrusted_certificate_is_unreachable_with_tls_detail(
    tls_emulator: RegistryEmulator, verifier: RegistryVerifier
) -> None:
    """Without the registry's CA, the handshake fails: registry_unreachable saying TLS verification failed."""
    result = verifier.verify(credential(), registry=tls_emulator.url, policy=policy())
    assert result.outcome == V.REGISTRY_UNREACHABLE
    assert result.detail.startswith("TLS verification failed")
    assert tls_emulator.requests == []


def test_ca_cert_makes_the_tls_registry_verify(
    tls_emulator: RegistryEmulator, verifier: RegistryVerifier, ca_cert: Path
) -> None:
    """With verify.ca_cert naming the CA, the whole token flow and the canary work over HTTPS."""
    canary = policy(ca_cert=ca_cert, canary_repository="team/app")
    result = verifier.verify(credential(), registry=tls_emulator.url, policy=canary)
    assert (result.outcome, result.status) == (V.OK, 200)
    assert [r.path for r in tls_emulator.requests] == ["/v2/", "/token", "/v2/team/app/manifests/latest"]


def test_clients_are_kept_per_ca_cert(verifier: RegistryVerifier, ca_cert: Path, tmp_path: Path) -> None:
    """One client per CA bundle: the same path gives the same client, another path another client."""
    other = tmp_path / "other.pem"
    other.write_bytes(ca_cert.read_bytes())
    assert verifier.client_for(ca_cert) is verifier.client_for(ca_cert)
    assert verifier.client_for(ca_cert) is not verifier.client_for(other)
    assert verifier.client_for(None) is not verifier.client_for(ca_cert)


def test_missing_ca_cert_file_is_unexpected(tls_emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """A verify.ca_cert that cannot be read is named in an unexpected result, before any request."""
    missing = Path("/nonexistent/registry-ca.pem")
    result = verifier.verify(credential(), registry=tls_emulator.url, policy=policy(ca_cert=missing))
    assert result.outcome == V.UNEXPECTED
    assert str(missing) in result.detail
    assert tls_emulator.requests == []


def test_plain_http_to_a_tls_port_is_unexpected(tls_emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """Speaking HTTP to an HTTPS server gets no HTTP answer: unexpected, not a crash."""
    registry = tls_emulator.url.replace("https://", "http://")
    assert verifier.verify(credential(), registry=registry, policy=policy()).outcome == V.UNEXPECTED


def test_credential_is_never_sent_to_a_plain_http_realm_of_an_https_registry(
    tls_ca: trustme.CA, verifier: RegistryVerifier, ca_cert: Path
) -> None:
    """An HTTPS registry whose challenge names an http:// realm gets no token request: unexpected."""
    with (
        RegistryEmulator() as realm_host,
        RegistryEmulator(tls=server_context(tls_ca), realm=f"{realm_host.url}/token") as registry,
    ):
        result = verifier.verify(credential(), registry=registry.url, policy=policy(ca_cert=ca_cert))
        realm_requests = list(realm_host.requests)
    assert result.outcome == V.UNEXPECTED
    assert "token realm over http" in result.detail
    assert realm_requests == []


# --- faults no local server produces: httpx.MockTransport ------------------------------


@contextlib.contextmanager
def _mock_verifier(handler: httpx.MockTransport) -> Iterator[RegistryVerifier]:
    with httpx.Client(transport=handler) as client, RegistryVerifier(http=client) as verifier:
        yield verifier


def _answers(*responses: httpx.Response) -> httpx.MockTransport:
    queue = list(responses)
    return httpx.MockTransport(lambda request: queue.pop(0))


def _bearer_challenge() -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="s"'})


@pytest.mark.parametrize(
    ("responses", "detail"),
    [
        ((httpx.Response(401, headers={"WWW-Authenticate": "Negotiate abc"}),), "unsupported authentication"),
        ((httpx.Response(401),), "unsupported authentication challenge (none)"),
        ((_bearer_challenge(), httpx.Response(200, text="<html>")), "without JSON"),
        ((_bearer_challenge(), httpx.Response(200, json={"expires_in": 60})), "without a token"),
        ((_bearer_challenge(), httpx.Response(200, json=["token"])), "without a token"),
        ((_bearer_challenge(), httpx.Response(503)), "token endpoint answered 503"),
        ((httpx.Response(403),), "answered 403 to an anonymous GET /v2/"),
        ((httpx.Response(404),), "answered 404 to an anonymous GET /v2/"),
        (
            (httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://[::1/token"'}),),
            "invalid token realm",
        ),
        (
            (httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="/token"'}),),
            "token realm over no scheme",
        ),
        (
            (httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.example/token"'}),),
            "token realm over http",
        ),
    ],
)
def test_odd_answers_are_unexpected(responses: tuple[httpx.Response, ...], detail: str) -> None:
    """Challenges we cannot answer and token endpoints that hand out no token are unexpected."""
    with _mock_verifier(_answers(*responses)) as verifier:
        result = verifier.verify(credential(), registry="registry.example", policy=policy())
        assert result.outcome == V.UNEXPECTED
        assert detail in result.detail


def test_token_from_access_token_field_is_used() -> None:
    """An OAuth-style answer with only access_token is accepted, and the token goes to /v2/."""
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "oauth-token-1234"})
        return _bearer_challenge() if len(seen) == 1 else httpx.Response(200, json={})

    with _mock_verifier(httpx.MockTransport(answer)) as verifier:
        assert verifier.verify(credential(), registry="registry.example", policy=policy()).outcome == V.OK
    assert seen[-1] == "Bearer oauth-token-1234"


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("boom"),
        httpx.ReadError("boom"),
        httpx.RemoteProtocolError("boom"),
        httpx.LocalProtocolError("boom"),
        httpx.ReadTimeout("boom"),
        httpx.PoolTimeout("boom"),
        httpx.DecodingError("boom"),
        httpx.TooManyRedirects("boom"),
        httpx.UnsupportedProtocol("boom"),
        httpx.InvalidURL("boom"),
    ],
)
def test_no_httpx_exception_escapes(error: Exception) -> None:
    """Whatever httpx raises becomes a result: unreachable for the network, unexpected for the rest."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    with _mock_verifier(httpx.MockTransport(fail)) as verifier:
        result = verifier.verify(credential(), registry="registry.example", policy=policy())
        assert result.outcome in (V.REGISTRY_UNREACHABLE, V.UNEXPECTED)
        assert "boom" not in result.detail


def test_oversized_answer_is_unexpected() -> None:
    """A /v2/ answer over 64 KiB is not read to the end: unexpected."""
    with _mock_verifier(_answers(httpx.Response(200, content=b"x" * (65 * 1024)))) as verifier:
        result = verifier.verify(credential(), registry="registry.example", policy=policy())
    assert (result.outcome, result.status) == (V.UNEXPECTED, 200)
    assert "larger than 64 KiB" in result.detail


def test_dripping_answer_times_out_at_the_deadline() -> None:
    """A body that trickles in chunk by chunk is cut at the policy's timeout: unreachable, timed out."""

    def drip() -> Iterator[bytes]:
        for _ in range(50):
            time.sleep(0.02)
            yield b"{"

    started = time.monotonic()
    with _mock_verifier(httpx.MockTransport(lambda request: httpx.Response(401, content=drip()))) as verifier:
        result = verifier.verify(credential(), registry="registry.example", policy=policy(timeout="200ms"))
    assert (result.outcome, result.detail) == (V.REGISTRY_UNREACHABLE, "timed out (read)")
    assert time.monotonic() - started < 0.6
