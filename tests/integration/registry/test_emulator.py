"""The registry emulator answers like distribution and its token servers, over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from service.sandbox.registry_emulator import RegistryEmulator
from tests.integration.registry.conftest import OTHER_PASSWORD, PASSWORD


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _token(
    http: httpx.Client, emulator: RegistryEmulator, auth: tuple[str, str], scope: str | None = None
) -> httpx.Response:
    params = {"service": emulator.service} | ({"scope": scope} if scope else {})
    return http.get(f"{emulator.url}/token", params=params, auth=auth)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_v2_challenges_with_bearer_realm_and_service(http: httpx.Client, emulator: RegistryEmulator) -> None:
    """An anonymous GET /v2/ gets a 401 naming its own /token as realm and its service."""
    answer = http.get(f"{emulator.url}/v2/")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == f'Bearer realm="{emulator.url}/token",service="registry-emulator"'


def test_token_grants_only_repositories_the_user_may_pull(http: httpx.Client, emulator: RegistryEmulator) -> None:
    """bob gets a token (not an error), but the manifest answers 401 insufficient_scope with it."""
    answer = _token(http, emulator, ("bob", OTHER_PASSWORD), "repository:team/app:pull")
    assert answer.status_code == 200
    head = http.head(f"{emulator.url}/v2/team/app/manifests/latest", headers=_bearer(answer.json()["token"]))
    assert head.status_code == 401
    assert 'error="insufficient_scope"' in head.headers["www-authenticate"]


def test_token_with_pull_scope_reads_the_manifest(http: httpx.Client, emulator: RegistryEmulator) -> None:
    """alice's token for team/app pulls its latest manifest; an unknown tag is 404."""
    token = _token(http, emulator, ("alice", PASSWORD), "repository:team/app:pull").json()["token"]
    url = f"{emulator.url}/v2/team/app/manifests"
    assert http.head(f"{url}/latest", headers=_bearer(token)).status_code == 200
    assert http.head(f"{url}/v9", headers=_bearer(token)).status_code == 404


@pytest.mark.parametrize(("auth", "status"), [(("alice", "wrong"), 401), (("mallory", PASSWORD), 401)])
def test_token_endpoint_refuses_bad_credentials(
    http: httpx.Client, emulator: RegistryEmulator, auth: tuple[str, str], status: int
) -> None:
    """A wrong password or an unknown user gets 401 from the token endpoint."""
    assert _token(http, emulator, auth).status_code == status


def test_token_endpoint_requires_its_service(http: httpx.Client, emulator: RegistryEmulator) -> None:
    """A token request without the challenge's service is refused (400)."""
    assert http.get(f"{emulator.url}/token", auth=("alice", PASSWORD)).status_code == 400


def test_revoke_stops_password_and_issued_tokens(http: httpx.Client, emulator: RegistryEmulator) -> None:
    """After revoke, the token issued before no longer opens /v2/, and no new token is issued."""
    token = _token(http, emulator, ("alice", PASSWORD)).json()["token"]
    assert http.get(f"{emulator.url}/v2/", headers=_bearer(token)).status_code == 200
    emulator.revoke("alice")
    refused = http.get(f"{emulator.url}/v2/", headers=_bearer(token))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert _token(http, emulator, ("alice", PASSWORD)).status_code == 401


def test_basic_mode_checks_password_and_repository(http: httpx.Client, basic_emulator: RegistryEmulator) -> None:
    """Basic mode: a Basic challenge, 200 with the password, 403 for a repository not granted."""
    url = basic_emulator.url
    assert http.get(f"{url}/v2/").headers["www-authenticate"] == 'Basic realm="registry-emulator"'
    assert http.get(f"{url}/v2/", auth=("alice", PASSWORD)).status_code == 200
    assert http.head(f"{url}/v2/team/app/manifests/latest", auth=("alice", PASSWORD)).status_code == 200
    assert http.head(f"{url}/v2/team/app/manifests/latest", auth=("bob", OTHER_PASSWORD)).status_code == 403


def test_fail_with_answers_every_request_with_that_status(http: httpx.Client, emulator: RegistryEmulator) -> None:
    """fail_with(503) makes every endpoint answer 503 until cleared."""
    emulator.fail_with(503)
    assert http.get(f"{emulator.url}/v2/").status_code == 503
    emulator.fail_with(None)
    assert http.get(f"{emulator.url}/v2/").status_code == 401


def test_requests_are_recorded_without_credentials(http: httpx.Client, emulator: RegistryEmulator) -> None:
    """The record keeps method, path, query and auth scheme, never the credential."""
    _token(http, emulator, ("alice", PASSWORD), "repository:team/app:pull")
    [recorded] = emulator.requests
    assert (recorded.method, recorded.path, recorded.auth_scheme) == ("GET", "/token", "basic")
    assert recorded.query["scope"] == ["repository:team/app:pull"]
    assert PASSWORD not in repr(emulator.requests)


def test_stop_closes_kept_alive_connections_and_frees_the_port() -> None:
    """stop() returns promptly even with a client still holding a keep-alive connection."""
    emulator = RegistryEmulator()
    url = emulator.start()
    with httpx.Client() as client:
        assert client.get(f"{url}/v2/").status_code == 401
        emulator.stop()
        with pytest.raises(httpx.ConnectError):
            client.get(f"{url}/v2/")


def test_stop_closes_a_connection_stuck_before_the_tls_handshake(tls_emulator: RegistryEmulator) -> None:
    """A client that connects to the HTTPS port and says nothing is disconnected by stop()."""
    host, port = tls_emulator.url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as client:
        time.sleep(0.1)  # the server's connection thread is now waiting in the handshake
        tls_emulator.stop()
        assert client.recv(1) == b""
