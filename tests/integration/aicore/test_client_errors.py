"""Every AI Core failure becomes a typed error from service.errors, with fields and without secrets."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from service.aicore.client import AICoreClient
from service.aicore.retry import RetryPolicy
from service.aicore.servicekey import ServiceKey
from service.errors import (
    AICoreAuthError,
    AICoreError,
    BadRequest,
    Forbidden,
    RateLimited,
    SecretNotFound,
    Unauthorized,
    Unavailable,
)
from service.model import DockerConfigJson
from service.sandbox.processes import free_port
from tests.integration.aicore.conftest import Rig, config_json, count

PASSWORD = "SENTINEL-pass-4d2c9e"


def test_bad_body_is_bad_request_with_ai_core_fields(rig: Rig) -> None:
    """A .dockerconfigjson that is not JSON: BadRequest with status, AI Core code and request id; no retry."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    with pytest.raises(BadRequest) as caught:
        rig.client().edit("my-registry", DockerConfigJson("{not json"))
    error = caught.value
    assert (error.status, error.aicore_code, error.target, error.secret) == (
        400,
        "BadRequest",
        "tenant-a",
        "my-registry",
    )
    assert error.request_id
    assert error.request_id in str(error)
    assert "not valid JSON" in str(error)  # AI Core's message, sanitised
    assert count(rig, method="PATCH") == 1


def test_forbidden_names_the_editor_role(rig: Rig) -> None:
    """403: Forbidden saying the identity may not edit Docker registry secrets, with the role to grant; no retry."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    rig.emulator.set_editor("tenant-a", False)
    with pytest.raises(Forbidden) as caught:
        rig.client().edit("my-registry", config_json())
    assert caught.value.status == 403
    assert "may not edit Docker registry secrets" in str(caught.value)
    assert "aicore_admin_dockerregistrysecret_editor" in str(caught.value)
    assert count(rig, method="PATCH") == 1


def test_unknown_secret_is_secret_not_found(rig: Rig) -> None:
    """404 on edit: SecretNotFound telling to create it first or set create_missing; no retry."""
    with pytest.raises(SecretNotFound) as caught:
        rig.client().edit("missing-registry", config_json())
    message = str(caught.value)
    assert caught.value.status == 404
    assert caught.value.secret == "missing-registry"
    assert "create it first" in message
    assert "create_missing" in message
    assert count(rig, method="PATCH") == 1


def test_second_401_is_unauthorized(rig: Rig) -> None:
    """A 401, a fresh token, and a 401 again: Unauthorized, after exactly one token refresh."""
    rig.emulator.fail_next("tenant-a", status=401, count=2)
    with pytest.raises(Unauthorized) as caught:
        rig.client().list_names()
    assert caught.value.status == 401
    assert count(rig, endpoint="token") == 2
    assert count(rig, endpoint="secrets") == 2


def test_persistent_429_is_rate_limited_after_all_attempts(rig: Rig) -> None:
    """429 on every attempt: RateLimited once the attempts are spent."""
    rig.emulator.fail_next("tenant-a", status=429, count=10, retry_after=1)
    with pytest.raises(RateLimited) as caught:
        rig.client(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.1, total=60)).list_names()
    assert caught.value.status == 429
    assert "after 3 attempts" in str(caught.value)
    assert count(rig, endpoint="secrets") == 3
    assert rig.sleeps == [1.0, 1.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_persistent_5xx_is_unavailable(rig: Rig, status: int) -> None:
    """5xx on every attempt: Unavailable with the last status."""
    rig.emulator.fail_next("tenant-a", status=status, count=10)
    with pytest.raises(Unavailable) as caught:
        rig.client().quota()
    assert caught.value.status == status
    assert count(rig, endpoint="quota") == 4


def test_persistent_timeouts_are_unavailable(rig: Rig) -> None:
    """A server that never answers in time: Unavailable saying it timed out, after the attempts."""
    rig.emulator.stall_next("tenant-a", seconds=0.3, count=2)
    retry = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.1, total=60)
    with pytest.raises(Unavailable) as caught:
        rig.client(timeout=0.05, retry=retry).get("my-registry")
    assert "timed out" in str(caught.value)
    assert "gave up after 2 attempts" in str(caught.value)
    assert caught.value.status is None


def test_connection_refused_is_unavailable(rig: Rig) -> None:
    """Nothing listening: Unavailable (a DependencyUnavailable, exit code 3) after the attempts."""
    key = rig.key()
    dead = f"http://127.0.0.1:{free_port()}"
    moved = ServiceKey(client_id=key.client_id, api_url=dead, auth_url=dead, client_secret=key.client_secret)
    with pytest.raises(Unavailable) as caught:
        rig.client(key=moved).list_names()
    assert "XSUAA" in str(caught.value)
    assert len(rig.sleeps) == 3


def test_wrong_client_secret_is_an_auth_error_without_retry(rig: Rig) -> None:
    """XSUAA refusing the credentials: AICoreAuthError naming the clientsecret; one token request only."""
    key = rig.key()
    wrong = ServiceKey(
        client_id=key.client_id, api_url=key.api_url, auth_url=key.auth_url, client_secret="wrong-secret-value"
    )
    with pytest.raises(AICoreAuthError) as caught:
        rig.client(key=wrong).list_names()
    assert caught.value.status == 401
    assert "clientsecret" in str(caught.value)
    assert count(rig, endpoint="token") == 1


def test_wrong_xsuaa_url_is_an_auth_error(rig: Rig) -> None:
    """A token URL that answers 404 is a configuration problem, not an outage."""
    key = rig.key()
    wrong = ServiceKey(
        client_id=key.client_id,
        api_url=key.api_url,
        auth_url=rig.emulator.url + "/uaa/nobody",
        client_secret=key.client_secret,
    )
    with pytest.raises(AICoreAuthError):
        rig.client(key=wrong).get("my-registry")


def test_token_endpoint_outage_is_retried_then_unavailable(rig: Rig) -> None:
    """XSUAA 503s are retried like API failures; persistent ones end as Unavailable."""
    rig.emulator.fail_next("tenant-a", status=503, count=10, endpoint="token")
    with pytest.raises(Unavailable) as caught:
        rig.client().list_names()
    assert "XSUAA" in str(caught.value)
    assert count(rig, endpoint="token") == 4
    assert count(rig, endpoint="secrets") == 0


# --- no library exception escapes, no secret in any error -----------------------------------


def _printed_chain(error: BaseException) -> list[BaseException]:
    """The exceptions a traceback shows: causes, and contexts unless suppressed (``from None``)."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None:
        chain.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return chain


def _raising(error: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.WriteTimeout("slow write"),
        httpx.PoolTimeout("pool exhausted"),
        httpx.ReadError("connection reset"),
        httpx.WriteError("broken pipe"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.LocalProtocolError("bad request line"),
        httpx.ProxyError("proxy refused"),
        httpx.UnsupportedProtocol("gopher"),
        httpx.DecodingError("bad gzip"),
    ],
)
def test_no_httpx_exception_escapes(rig: Rig, fault: httpx.HTTPError) -> None:
    """Transport faults no real server produces on demand (MockTransport) all become Unavailable."""
    client = rig.client(transport=_raising(fault))
    for call in (lambda: client.edit("my-registry", config_json()), client.list_names, client.quota):
        with pytest.raises(Unavailable) as caught:
            call()
        assert not any(isinstance(link, httpx.HTTPError) for link in _printed_chain(caught.value))


def _echoing_server(*, token: str) -> Callable[[httpx.Request], httpx.Response]:
    """A hostile AI Core: echoes the request body and the Authorization header in its error message."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, json={"access_token": token, "token_type": "bearer", "expires_in": 3600})
        echo = f"bad input {request.content.decode()} from {request.headers.get('authorization')}"
        error = {"code": f"E {token}", "message": echo * 3, "requestId": f"req-{token}"}
        return httpx.Response(400, json={"error": error}, headers={"x-request-id": token})

    return handler


def _all_text(error: BaseException) -> str:
    return str(error) + repr(error) + "".join(traceback.format_exception(error))


def test_errors_never_hold_the_value_client_secret_or_token(rig: Rig) -> None:
    """Even when AI Core echoes everything back, no error's str, repr or traceback holds a secret."""
    token = "opaque-token-5b7e1f00aa"
    key = rig.key()
    client = rig.client(key=key, transport=httpx.MockTransport(_echoing_server(token=token)))
    value = config_json(PASSWORD)
    errors: list[AICoreError] = []
    for call in (lambda: client.edit("my-registry", value), lambda: client.create("my-registry", value)):
        with pytest.raises(BadRequest) as caught:
            call()
        errors.append(caught.value)
    for error in errors:
        text = _all_text(error)
        for secret in (PASSWORD, value.reveal(), token, str(key.client_secret)):
            assert secret not in text
        assert len(error.message) < 700
        assert error.status == 400


def test_real_failures_leave_no_secret_in_errors_or_logs(rig: Rig) -> None:
    """Every failure the emulator can produce, with a sentinel password: none in errors, none in log events."""
    client_key = rig.key()
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    value = config_json(PASSWORD)
    scenarios: list[Callable[[AICoreClient], Any]] = [
        lambda c: c.edit("missing-name", value),
        lambda c: c.edit("my-registry", DockerConfigJson('{"auths": {"r": {"password": "' + PASSWORD + '"}')),
    ]
    errors: list[BaseException] = []
    with capture_logs() as logs:
        for setup in (
            lambda: None,
            lambda: rig.emulator.fail_next("tenant-a", status=429, count=10, retry_after=0),
            lambda: rig.emulator.fail_next("tenant-a", status=503, count=10),
            lambda: rig.emulator.fail_next("tenant-a", status=401, count=2),
            lambda: rig.emulator.set_editor("tenant-a", False),
        ):
            for scenario in scenarios:
                setup()
                with pytest.raises(AICoreError) as caught:
                    scenario(rig.client(key=client_key))
                errors.append(caught.value)
                rig.emulator.clear_faults("tenant-a")
                rig.emulator.set_editor("tenant-a", True)
    assert {type(e) for e in errors} >= {SecretNotFound, BadRequest, RateLimited, Unavailable, Unauthorized, Forbidden}
    logged = json.dumps(logs, default=str)
    for secret in (PASSWORD, str(client_key.client_secret)):
        assert secret not in logged
        for error in errors:
            assert secret not in _all_text(error)


def test_ai_core_message_is_redacted_and_truncated(rig: Rig) -> None:
    """A long AI Core message is cut to ~200 characters, and credential shapes in it are masked."""
    long_message = 'value {"auths": {"x": {"password": "p"}}} ' + "x" * 1000

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, json={"access_token": "t" * 20, "expires_in": 60})
        return httpx.Response(400, json={"error": {"code": "Bad", "message": long_message}})

    with pytest.raises(BadRequest) as caught:
        rig.client(transport=httpx.MockTransport(handler)).quota()
    quoted = str(caught.value).split("AI Core says: ", 1)[1]
    assert len(quoted) <= 200
    assert "auths" not in quoted
