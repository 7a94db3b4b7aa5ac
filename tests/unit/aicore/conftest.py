"""Fixtures for the AI Core unit tests: a running emulator on a fake clock, and a plain HTTP client."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.sandbox.aicore_emulator import AICoreEmulator
from tests.fakes import ManualMonotonic as FakeClock

# The emulator speaks plain HTTP: a context with no trusted CA at all (cheap to build, and
# any accidental https:// would fail) spares each client loading the CA bundle.
PLAIN = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def fetch_token(key: dict[str, Any]) -> str:
    """A bearer token for the tenant of ``key``, fetched with the form body."""
    form = {"grant_type": "client_credentials", "client_id": key["clientid"], "client_secret": key["clientsecret"]}
    response = httpx.post(key["url"] + "/oauth/token", data=form, timeout=5, verify=PLAIN)
    response.raise_for_status()
    return str(response.json()["access_token"])


def api_client(key: dict[str, Any]) -> httpx.Client:
    """A plain httpx client on ``{AI_API_URL}/v2/admin`` that sends the tenant's bearer token."""
    return httpx.Client(
        base_url=key["serviceurls"]["AI_API_URL"] + "/v2/admin",
        headers={"Authorization": f"Bearer {fetch_token(key)}"},
        timeout=5,
        verify=PLAIN,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[AICoreEmulator]:
    """A running emulator whose tokens expire on ``clock``."""
    with AICoreEmulator(clock=clock) as running:
        yield running


@pytest.fixture
def key(emulator: AICoreEmulator) -> dict[str, Any]:
    """The service key of tenant ``tenant-a``."""
    return emulator.add_tenant("tenant-a")


@pytest.fixture
def api(key: dict[str, Any]) -> Iterator[httpx.Client]:
    """A plain HTTP client authorised for ``tenant-a``."""
    with api_client(key) as client:
        yield client
