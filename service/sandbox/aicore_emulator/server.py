"""``AICoreEmulator``: start and stop the listeners, add tenants, turn the knobs, inspect."""

from __future__ import annotations

import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

from service.sandbox.aicore_emulator.admin import Admin
from service.sandbox.aicore_emulator.handler import EmulatorServer
from service.sandbox.aicore_emulator.state import Fault, Periodic, PeriodicStall, Request, Tenant, World, Write

TENANT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}")
DEFAULT_TOKEN_TTL = 3600


class Inspector:
    """What the API never returns (stored values) and what happened (writes, request counts).

    For tests, benchmarks and ``rotator demo`` only: a separate door, not part of the
    emulated AI Core API.
    """

    def __init__(self, world: World, connections: Callable[[], int]) -> None:
        self._world = world
        self._connections = connections

    def stored(self, tenant: str, name: str) -> str | None:
        """The ``.dockerconfigjson`` stored under ``name``, or None."""
        return self._world.stored(tenant, name)

    def names(self, tenant: str) -> list[str]:
        return self._world.names(tenant)

    def writes(self, tenant: str) -> list[Write]:
        """Accepted POST / PATCH / DELETE calls, oldest first: (time, method, name), never a value."""
        return self._world.writes(tenant)

    def request_count(
        self, tenant: str | None = None, *, method: str | None = None, endpoint: str | None = None
    ) -> int:
        """Requests received; ``endpoint`` is one of token, secrets, secret, quota."""
        return self._world.request_count(tenant, method, endpoint)

    def seed(self, tenant: str, name: str, value: str) -> None:
        """Store a secret as if it had been created earlier (no write recorded, no quota check)."""
        self._world.seed(tenant, name, value)

    def requests(self, *, since: int = 0) -> list[Request]:
        """The request log (XSUAA and API requests, as answered), after entry ``since``; never a value."""
        return self._world.requests(since)

    def peak_in_flight(self) -> int:
        """The most requests the emulator was handling at one moment."""
        return self._world.peak_in_flight

    def connection_count(self) -> int:
        """TCP connections accepted so far (keep-alive clients reuse theirs)."""
        return self._connections()


class AICoreEmulator:
    """An AI Core tenant farm on 127.0.0.1: ``with AICoreEmulator() as emulator: key = emulator.add_tenant("t")``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        token_ttl: int = DEFAULT_TOKEN_TTL,
        clock: Callable[[], float] = time.monotonic,
        mtls_context: ssl.SSLContext | None = None,
        mtls_port: int = 0,
        admin: bool = True,
    ) -> None:
        self._host, self._port = host, port
        self._admin = Admin(self) if admin else None
        self._mtls_context, self._mtls_port = mtls_context, mtls_port
        self._world = World(clock=clock, token_ttl=token_ttl, latency=latency)
        self._stopping = threading.Event()
        self._servers: list[tuple[EmulatorServer, threading.Thread]] = []
        self._x509: dict[str, tuple[str, str]] = {}
        self._accepted_before = 0  # by listeners already stopped
        self.inspect = Inspector(self._world, self._accepted)

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> str:
        """Listen (on a free port unless one was given) and serve in background threads; return the base URL."""
        if self._servers:
            return self.url
        self._stopping.clear()
        self._listen(self._host, self._port, tls=None)
        if self._mtls_context is not None:
            self._listen(self._host, self._mtls_port, tls=self._mtls_context)
        return self.url

    def _listen(self, host: str, port: int, *, tls: ssl.SSLContext | None) -> None:
        server = EmulatorServer(
            (host, port), world=self._world, stopping=self._stopping, tls=tls, admin=None if tls else self._admin
        )
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="aicore-emulator", daemon=True
        )
        thread.start()
        self._servers.append((server, thread))

    def stop(self) -> None:
        """Stop listening, wake sleeping requests, close idle keep-alive connections."""
        self._stopping.set()
        self._accepted_before = self._accepted()
        for server, thread in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join(timeout=5)
        self._servers.clear()

    def _accepted(self) -> int:
        return self._accepted_before + sum(server.accepted for server, _ in self._servers)

    def __enter__(self) -> AICoreEmulator:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: XSUAA below ``/uaa/<tenant>``, the API below ``/api/<tenant>``."""
        return f"http://{self._address(0)}"

    @property
    def mtls_url(self) -> str:
        """``https://127.0.0.1:<port>``: the client-certificate token endpoint of X.509 tenants."""
        if len(self._servers) < 2:
            raise RuntimeError("the emulator was built without mtls_context")
        return f"https://{self._address(1)}"

    def _address(self, index: int) -> str:
        if len(self._servers) <= index:
            raise RuntimeError("the emulator is not started")
        host, port = self._servers[index][0].server_address[:2]
        return f"{host!s}:{port}"

    # --- tenants --------------------------------------------------------------

    def add_tenant(
        self,
        name: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        editor: bool = True,
        quota: int = 50,
        certificate: str | None = None,
        private_key: str | None = None,
    ) -> dict[str, Any]:
        """Add a tenant with its own credentials and secrets; return its service key (X.509 if ``certificate``)."""
        if not TENANT_NAME_RE.fullmatch(name):
            raise ValueError(f"tenant names use letters, digits, '.', '_' and '-': {name!r}")
        der = None
        if certificate is not None:
            self.mtls_url  # noqa: B018 (fails early without an mTLS listener)
            der = ssl.PEM_cert_to_DER_cert(_first_certificate(certificate))
            self._x509[name] = (certificate, private_key or "")
        tenant = Tenant(
            name=name,
            client_id=client_id or f"sb-{uuid.uuid4()}!b{secrets.randbelow(10**6)}|aicore!b540",
            client_secret=None if certificate else (client_secret or secrets.token_urlsafe(32)),
            certificate_der=der,
            editor=editor,
            quota=quota,
        )
        self._world.add(tenant)
        return self.service_key(name)

    def service_key(self, name: str) -> dict[str, Any]:
        """The service key JSON (as a dict) BTP would hand out for this tenant."""
        tenant = self._world.tenant(name)
        key: dict[str, Any] = {
            "clientid": tenant.client_id,
            "url": f"{self.url}/uaa/{name}",
            "identityzone": name,
            "appname": f"aicore-emulator!{name}",
            "serviceurls": {"AI_API_URL": f"{self.url}/api/{name}"},
        }
        if name in self._x509:
            certificate, private_key = self._x509[name]
            key |= {"credential-type": "x509", "certificate": certificate, "key": private_key}
            key["certurl"] = f"{self.mtls_url}/uaa/{name}"
        else:
            key["clientsecret"] = tenant.client_secret
        return key

    def tenants(self) -> list[str]:
        return self._world.tenant_names()

    def has_tenant(self, name: str) -> bool:
        return self._world.has_tenant(name)

    def remove_secret(self, tenant: str, name: str) -> bool:
        """Delete a secret out of band, as someone in the SAP console would (no write recorded); False if absent."""
        return self._world.remove(tenant, name)

    def log_requests_to(self, sink: Callable[[Request], None] | None) -> None:
        """Also hand every logged request to ``sink`` (e.g. append it to a JSONL file)."""
        self._world.log_sink = sink

    # --- knobs (thread-safe) --------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds every request waits before it is handled."""
        return self._world.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._world.latency = seconds

    @property
    def token_ttl(self) -> int:
        """``expires_in`` of tokens issued from now on, in seconds."""
        return self._world.token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: int) -> None:
        self._world.token_ttl = seconds

    def fail_next(
        self,
        tenant: str,
        *,
        status: int,
        count: int = 1,
        retry_after: float | str | None = None,
        endpoint: str = "api",
    ) -> None:
        """Answer the tenant's next ``count`` API (or ``endpoint="token"``) requests with ``status``."""
        if not 400 <= status <= 599 or endpoint not in ("api", "token"):
            raise ValueError("status must be 4xx or 5xx and endpoint 'api' or 'token'")
        after = None if retry_after is None else str(retry_after)
        self._world.add_faults(tenant, endpoint, Fault(status, after), count)

    def stall_next(self, tenant: str, *, seconds: float, count: int = 1, method: str | None = None) -> None:
        """Hold the tenant's next ``count`` API requests (of ``method``, if given) ``seconds``; they still apply."""
        self._world.add_stalls(tenant, seconds, count, None if method is None else method.upper())

    @property
    def periodic_fault(self) -> Periodic | None:
        """A standing fault rule over every tenant's API requests (a 429 storm, 503 bursts), or None."""
        return self._world.periodic

    @periodic_fault.setter
    def periodic_fault(self, rule: Periodic | None) -> None:
        self._world.periodic = rule

    def fail_every(self, *, status: int, every: int, burst: int = 1, retry_after: float | str | None = None) -> None:
        """From the next API request on (all tenants): ``burst`` in a row get ``status``, then ``every`` pass..."""
        if not 400 <= status <= 599 or every < 1 or burst < 1:
            raise ValueError("status must be 4xx or 5xx, every and burst at least 1")
        self._world.periodic = Periodic(status, every, burst, None if retry_after is None else str(retry_after))

    @property
    def periodic_stall(self) -> PeriodicStall | None:
        """A standing stall rule (every N-th request of a method held, then handled), or None."""
        return self._world.periodic_stall

    @periodic_stall.setter
    def periodic_stall(self, rule: PeriodicStall | None) -> None:
        self._world.periodic_stall = rule

    def stall_every(self, *, seconds: float, every: int = 1, method: str | None = "PATCH") -> None:
        """Hold every ``every``-th request of ``method`` (None: any API request) ``seconds``, then handle it."""
        if seconds < 0 or every < 1:
            raise ValueError("seconds must be >= 0 and every at least 1")
        self._world.periodic_stall = PeriodicStall(seconds, every, None if method is None else method.upper())

    def clear_faults(self, tenant: str) -> None:
        """Drop the tenant's pending injected errors and stalls."""
        self._world.clear_faults(tenant)

    def set_editor(self, tenant: str, editor: bool) -> None:
        """Give or take the tenant's right to create, edit and delete secrets (403 without it)."""
        self._world.set_editor(tenant, editor)

    def expire_tokens(self, tenant: str | None = None) -> None:
        """Invalidate every token issued so far (to one tenant, or to all)."""
        self._world.expire_tokens(tenant)


def _first_certificate(pem: str) -> str:
    end = "-----END CERTIFICATE-----"
    return pem[: pem.index(end) + len(end)] if end in pem else pem
