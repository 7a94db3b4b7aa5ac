"""Everything the emulator holds: tenants, their secrets, tokens, knobs, counters, request log. One lock.

Every method takes the lock for a few dictionary operations only; latency and stalls
are slept by the request handlers outside it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from service.sandbox.aicore_emulator.rules import Refusal

REQUEST_LOG_LIMIT = 100_000  # entries kept in memory: a long demo must not grow without bound


@dataclass(frozen=True, slots=True)
class Write:
    """One accepted write: when (on the emulator's clock), which method, which name. Never the value."""

    at: float
    method: str
    name: str


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected error answer."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Periodic:
    """``burst`` API requests in a row get ``status``, then ``every`` pass, and so on (a storm, or bursts).

    Counted over every tenant's API requests from the moment the rule is set: the first
    request after it starts a burst.
    """

    status: int
    every: int
    burst: int = 1
    retry_after: str | None = None

    def hits(self, number: int) -> bool:
        """Whether API request ``number`` (1-based since the rule was set) is one of the failed ones."""
        return (number - 1) % (self.every + self.burst) < self.burst


@dataclass(frozen=True, slots=True)
class PeriodicStall:
    """Hold every ``every``-th request of ``method`` (None: any API method) ``seconds``, then handle it."""

    seconds: float
    every: int
    method: str | None = "PATCH"


@dataclass(slots=True)
class Seen:
    """What the handler learns about a request while it routes it (the request log's input)."""

    at: float
    method: str
    path: str
    body_sha256: str | None
    tenant: str = ""
    endpoint: str = ""
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the request log keeps it: never a value, only the SHA-256 of the body.

    ``at`` and ``done`` are wall-clock seconds (``time.time()``) when the request arrived and
    when its answer was sent, so that tests can line them up with the audit trail.
    """

    number: int
    at: float
    done: float
    method: str
    path: str
    tenant: str
    endpoint: str
    name: str | None
    status: int
    body_sha256: str | None
    request_id: str

    def as_json(self) -> dict[str, object]:
        return {field_name: getattr(self, field_name) for field_name in self.__slots__}

    @property
    def is_write(self) -> bool:
        """A PATCH of a secret or a POST creating one (whatever the answer)."""
        return (self.method, self.endpoint) in (("PATCH", "secret"), ("POST", "secrets"))


@dataclass(slots=True)
class Tenant:
    name: str
    client_id: str
    client_secret: str | None  # None for X.509 tenants
    certificate_der: bytes | None = None
    editor: bool = True
    quota: int = 50
    secrets: dict[str, str] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: {"api": deque(), "token": deque()})
    stalls: deque[tuple[float, str | None]] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class _Grant:
    tenant: str
    expires_at: float


class World:
    """The emulator's state. Thread-safe."""

    def __init__(self, *, clock: Callable[[], float], token_ttl: int, latency: float) -> None:
        self.clock = clock
        self.token_ttl = token_ttl
        self.latency = latency
        self._lock = threading.Lock()
        self._tenants: dict[str, Tenant] = {}
        self._grants: dict[str, _Grant] = {}
        self._signing_key = secrets.token_bytes(32)
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._in_flight = 0
        self.peak_in_flight = 0
        self._periodic: Periodic | None = None
        self.periodic_stall: PeriodicStall | None = None
        self._api_requests = 0
        self._method_requests: Counter[str] = Counter()
        self._log: deque[Request] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._logged = 0
        self.log_sink: Callable[[Request], None] | None = None

    # --- tenants and knobs ----------------------------------------------------

    def add(self, tenant: Tenant) -> None:
        with self._lock:
            if tenant.name in self._tenants:
                raise ValueError(f"tenant {tenant.name!r} exists already")
            self._tenants[tenant.name] = tenant

    def tenant(self, name: str) -> Tenant:
        """The tenant (for reading fields that never change after ``add``); KeyError if unknown."""
        with self._lock:
            return self._tenants[name]

    def has_tenant(self, name: str) -> bool:
        with self._lock:
            return name in self._tenants

    def tenant_names(self) -> list[str]:
        with self._lock:
            return sorted(self._tenants)

    def is_editor(self, name: str) -> bool:
        with self._lock:
            return self._tenants[name].editor

    def set_editor(self, name: str, editor: bool) -> None:
        with self._lock:
            self._tenants[name].editor = editor

    def add_faults(self, name: str, endpoint: str, fault: Fault, count: int) -> None:
        with self._lock:
            self._tenants[name].faults[endpoint].extend([fault] * count)

    def add_stalls(self, name: str, seconds: float, count: int, method: str | None = None) -> None:
        with self._lock:
            self._tenants[name].stalls.extend([(seconds, method)] * count)

    def clear_faults(self, name: str) -> None:
        with self._lock:
            tenant = self._tenants[name]
            for queue in tenant.faults.values():
                queue.clear()
            tenant.stalls.clear()

    @property
    def periodic(self) -> Periodic | None:
        return self._periodic

    @periodic.setter
    def periodic(self, rule: Periodic | None) -> None:
        with self._lock:
            self._periodic, self._api_requests = rule, 0

    def take_fault(self, name: str, endpoint: str) -> Fault | None:
        """The tenant's next queued fault; else, for API requests, the periodic rule's answer (if it hits)."""
        with self._lock:
            queue = self._tenants[name].faults[endpoint]
            if queue:
                return queue.popleft()
            if endpoint != "api":
                return None
            self._api_requests += 1
            rule = self._periodic
            if rule is not None and rule.hits(self._api_requests):
                return Fault(rule.status, rule.retry_after)
            return None

    def take_stall(self, name: str, method: str) -> float:
        """Seconds to hold this API request: a queued stall for its method first, then the periodic one."""
        with self._lock:
            stalls = self._tenants[name].stalls
            if stalls and stalls[0][1] in (None, method):
                return stalls.popleft()[0]
            rule = self.periodic_stall
            if rule is None or rule.method not in (None, method):
                return 0.0
            self._method_requests[method] += 1
            return rule.seconds if self._method_requests[method] % rule.every == 0 else 0.0

    # --- tokens ---------------------------------------------------------------

    def issue_token(self, tenant: Tenant) -> tuple[str, int]:
        """A JWT-shaped bearer token for ``tenant``, valid for ``token_ttl`` seconds."""
        with self._lock:
            now, ttl = self.clock(), self.token_ttl
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
            claims = {"sub": tenant.client_id, "zid": tenant.name, "jti": secrets.token_hex(8), "ttl": ttl}
            token = self._sign(claims)
            self._grants[token] = _Grant(tenant.name, now + ttl)
            return token, ttl

    def _sign(self, claims: dict[str, object]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def token_tenant(self, token: str) -> str | None:
        """The tenant a live token was issued to, or None (unknown or expired)."""
        with self._lock:
            grant = self._grants.get(token)
            if grant is None or grant.expires_at <= self.clock():
                return None
            return grant.tenant

    def expire_tokens(self, name: str | None) -> None:
        with self._lock:
            self._grants = {t: g for t, g in self._grants.items() if name is not None and g.tenant != name}

    # --- secrets --------------------------------------------------------------

    def create(self, name: str, secret: str, value: str) -> None:
        with self._lock:
            tenant = self._tenants[name]
            if secret in tenant.secrets:
                raise Refusal(409, "AlreadyExists", f"Docker registry secret {secret} already exists")
            if len(tenant.secrets) >= tenant.quota:
                raise Refusal(
                    400, "QuotaExceeded", f"the tenant's quota of {tenant.quota} Docker registry secrets is reached"
                )
            tenant.secrets[secret] = value
            tenant.writes.append(Write(self.clock(), "POST", secret))

    def replace(self, name: str, secret: str, value: str) -> None:
        with self._lock:
            tenant = self._tenants[name]
            _require(tenant, secret)
            tenant.secrets[secret] = value
            tenant.writes.append(Write(self.clock(), "PATCH", secret))

    def delete(self, name: str, secret: str) -> None:
        with self._lock:
            tenant = self._tenants[name]
            _require(tenant, secret)
            del tenant.secrets[secret]
            tenant.writes.append(Write(self.clock(), "DELETE", secret))

    def remove(self, name: str, secret: str) -> bool:
        """Delete a secret out of band (as someone else would, in the SAP console): no write recorded."""
        with self._lock:
            return self._tenants[name].secrets.pop(secret, None) is not None

    def exists(self, name: str, secret: str) -> bool:
        with self._lock:
            return secret in self._tenants[name].secrets

    def names(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self._tenants[name].secrets)

    def usage(self, name: str) -> tuple[int, int]:
        with self._lock:
            tenant = self._tenants[name]
            return len(tenant.secrets), tenant.quota

    def stored(self, name: str, secret: str) -> str | None:
        with self._lock:
            return self._tenants[name].secrets.get(secret)

    def seed(self, name: str, secret: str, value: str) -> None:
        with self._lock:
            self._tenants[name].secrets[secret] = value

    def writes(self, name: str) -> list[Write]:
        with self._lock:
            return list(self._tenants[name].writes)

    # --- counters -------------------------------------------------------------

    def begin(self, tenant: str, method: str, endpoint: str) -> None:
        with self._lock:
            self._requests[(tenant, method, endpoint)] += 1
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def request_count(self, tenant: str | None, method: str | None, endpoint: str | None) -> int:
        with self._lock:
            return sum(
                count
                for (t, m, e), count in self._requests.items()
                if tenant in (None, t) and method in (None, m) and endpoint in (None, e)
            )

    # --- request log ----------------------------------------------------------

    def log_request(self, seen: Seen, *, status: int, request_id: str) -> Request:
        """Append one answered request to the log (and to the sink, e.g. a JSONL file)."""
        with self._lock:
            self._logged += 1
            record = Request(
                number=self._logged,
                at=seen.at,
                done=time.time(),
                method=seen.method,
                path=seen.path,
                tenant=seen.tenant,
                endpoint=seen.endpoint,
                name=seen.name,
                status=status,
                body_sha256=seen.body_sha256,
                request_id=request_id,
            )
            self._log.append(record)
            sink = self.log_sink
        if sink is not None:
            sink(record)
        return record

    def requests(self, since: int = 0) -> list[Request]:
        """Logged requests from number ``since + 1`` on, oldest first (the newest ``REQUEST_LOG_LIMIT`` are kept)."""
        with self._lock:
            return [record for record in self._log if record.number > since]


def _require(tenant: Tenant, secret: str) -> None:
    if secret not in tenant.secrets:
        raise Refusal(404, "NotFound", f"Docker registry secret {secret} not found")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
