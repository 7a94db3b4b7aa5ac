"""The AI Core client against the emulator over real HTTP, on a shared fake clock.

``rig.client(...)`` builds an ``AICoreClient`` the way ``build_client`` does (the API's
``Wire`` and the token fetch's ``httpx.Client`` over one transport: a real one to the
emulator, or the test's ``httpx.MockTransport``), but with the test's clock and a recording
``sleep`` (which advances the clock instead of waiting), so retry and token-expiry tests
run in milliseconds.
"""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from service.aicore.auth import TokenProvider
from service.aicore.client import AICoreClient, api_headers
from service.aicore.retry import RetryPolicy
from service.aicore.servicekey import ServiceKey, parse_service_key
from service.aicore.wire import Wire
from service.model import DockerConfigJson
from service.sandbox.aicore_emulator import AICoreEmulator
from tests.fakes import ManualMonotonic as FakeClock

# The emulator speaks plain HTTP: an empty trust store is cheap to build and refuses any https.
PLAIN = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.1, total=60.0)


def config_json(password: str = "pw-1", host: str = "registry.example.com") -> DockerConfigJson:
    value = {"auths": {host: {"username": "robot", "password": password}}}
    return DockerConfigJson(json.dumps(value, separators=(",", ":")))


@dataclass
class Rig:
    emulator: AICoreEmulator
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)
    _opened: list[httpx.Client] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def key(self, tenant: str = "tenant-a") -> ServiceKey:
        return parse_service_key(json.dumps(self.emulator.service_key(tenant)))

    def http(self, *, timeout: float = 2.0, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        client = httpx.Client(timeout=timeout, verify=PLAIN, transport=transport)
        self._opened.append(client)
        return client

    def tokens(
        self, key: ServiceKey, http: httpx.Client, *, refresh_margin: float = 60.0, target: str = "tenant-a"
    ) -> TokenProvider:
        return TokenProvider(key=key, http=http, clock=self.clock, refresh_margin=refresh_margin, target=target)

    def client(
        self,
        tenant: str = "tenant-a",
        *,
        key: ServiceKey | None = None,
        retry: RetryPolicy = FAST_RETRY,
        timeout: float = 2.0,
        page_size: int = 50,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> AICoreClient:
        key = key or self.key(tenant)
        shared = transport or httpx.HTTPTransport(verify=PLAIN)
        http = self.http(timeout=timeout, transport=shared)
        wire = Wire(transport=shared, timeout=httpx.Timeout(timeout), headers=api_headers(http))
        return AICoreClient(
            target=tenant,
            key=key,
            wire=wire,
            tokens=self.tokens(key, http, target=tenant),
            retry=retry,
            sleep=sleep or self.sleep,
            clock=self.clock,
            rng=random.Random(4),
            page_size=page_size,
        )

    def close(self) -> None:
        for client in self._opened:
            client.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    """A running emulator with tenant ``tenant-a`` (quota 50), and a client factory."""
    clock = FakeClock()
    with AICoreEmulator(clock=clock) as emulator:
        emulator.add_tenant("tenant-a")
        rig = Rig(emulator, clock)
        yield rig
        rig.close()


def count(rig: Rig, **filters: Any) -> int:
    """Requests the emulator received from tenant-a."""
    return rig.emulator.inspect.request_count("tenant-a", **filters)
