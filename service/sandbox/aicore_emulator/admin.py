"""The emulator's admin door: its knobs and inspection over HTTP, for tests that run it as a process.

Outside SAP's API (everything is below ``/_emulator/``, never below ``/v2``), answered to
loopback clients only (403 otherwise), JSON in and out, never logged in the request log::

    GET    /_emulator/requests?since=N              the request log after entry N
    GET    /_emulator/state                         tenants and global knobs
    POST   /_emulator/knobs                         {"latency_ms", "token_ttl", "fail", "stall"} (each optional)
    POST   /_emulator/expire-tokens                 every token issued so far becomes invalid
    POST   /_emulator/tenants                       {"name", "client_id", "client_secret", "editor", "quota"}
    GET    /_emulator/tenants/<t>/key               the tenant's service key
    GET    /_emulator/tenants/<t>/secrets           {"names": [...]}
    GET    /_emulator/tenants/<t>/secrets/<name>    {"value": ...} (the test-only view of a stored value)
    PUT    /_emulator/tenants/<t>/secrets/<name>    {"value": ...} seed, as if created earlier
    DELETE /_emulator/tenants/<t>/secrets/<name>    delete out of band (someone else, in the console)
    GET    /_emulator/tenants/<t>/writes            accepted POST / PATCH / DELETE calls
    POST   /_emulator/tenants/<t>/faults            {"status", "count", "retry_after", "endpoint"}
    POST   /_emulator/tenants/<t>/stalls            {"seconds", "count", "method"}
    POST   /_emulator/tenants/<t>/clear             drop queued faults and stalls
    POST   /_emulator/tenants/<t>/editor            {"editor": true | false}
    POST   /_emulator/tenants/<t>/expire-tokens     the tenant's tokens become invalid

``fail`` is ``{"status", "every", "burst", "retry_after"}`` (or null to stop): from the
next API request on, ``burst`` requests in a row get ``status``, then ``every`` pass, and so on. ``stall`` is
``{"seconds", "every", "method"}`` (or null): every ``every``-th request of ``method`` is
held ``seconds``, then handled (a write still applies: "a late PATCH").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from service.sandbox.aicore_emulator.handler import Answer
from service.sandbox.aicore_emulator.state import Periodic, PeriodicStall

if TYPE_CHECKING:
    from service.sandbox.aicore_emulator.server import AICoreEmulator

T = TypeVar("T")


class BadRequest(Exception):
    """A request to the admin door that cannot be carried out (its answer's status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Admin:
    """Routes ``/_emulator/...`` requests to the emulator's knobs and inspector."""

    def __init__(self, emulator: AICoreEmulator) -> None:
        self._emulator = emulator

    def __call__(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> Answer:
        try:
            return self._route(method, [part for part in path.split("/") if part], query, _body(raw))
        except BadRequest as e:
            return Answer(e.status, {"error": e.message})

    def _route(self, method: str, parts: list[str], query: dict[str, list[str]], body: dict[str, Any]) -> Answer:
        match method, parts:
            case "GET", ["requests"]:
                return self._requests(query)
            case "GET", ["state"]:
                return Answer(200, self._state())
            case "POST", ["knobs"]:
                return self._knobs(body)
            case "POST", ["expire-tokens"]:
                self._emulator.expire_tokens()
                return Answer(200, {})
            case "POST", ["tenants"]:
                return self._add_tenant(body)
            case _, ["tenants", tenant, *rest] if self._emulator.has_tenant(tenant):
                return self._tenant(method, tenant, rest, body)
            case _, ["tenants", tenant, *_]:
                raise BadRequest(404, f"no tenant {tenant!r}")
        raise BadRequest(404, f"no admin route {method} /{'/'.join(parts)}")

    def _tenant(  # noqa: PLR0911 (one return per route: the match is the routing table)
        self, method: str, tenant: str, rest: list[str], body: dict[str, Any]
    ) -> Answer:
        emulator = self._emulator
        match method, rest:
            case "GET", ["key"]:
                return Answer(200, emulator.service_key(tenant))
            case "GET", ["secrets"]:
                return Answer(200, {"names": emulator.inspect.names(tenant)})
            case "GET", ["secrets", name]:
                value = emulator.inspect.stored(tenant, name)
                if value is None:
                    raise BadRequest(404, f"no secret {name!r} on {tenant!r}")
                return Answer(200, {"value": value})
            case "PUT", ["secrets", name]:
                emulator.inspect.seed(tenant, name, _field(body, "value", str))
                return Answer(200, {})
            case "DELETE", ["secrets", name]:
                return Answer(200, {"deleted": emulator.remove_secret(tenant, name)})
            case "GET", ["writes"]:
                writes = emulator.inspect.writes(tenant)
                return Answer(200, {"writes": [{"at": w.at, "method": w.method, "name": w.name} for w in writes]})
            case "POST", ["faults"]:
                return self._faults(tenant, body)
            case "POST", ["stalls"]:
                method_filter = body.get("method")
                emulator.stall_next(
                    tenant,
                    seconds=_number(body, "seconds"),
                    count=_count(body),
                    method=None if method_filter is None else str(method_filter),
                )
                return Answer(200, {})
            case "POST", ["clear"]:
                emulator.clear_faults(tenant)
                return Answer(200, {})
            case "POST", ["editor"]:
                emulator.set_editor(tenant, _field(body, "editor", bool))
                return Answer(200, {})
            case "POST", ["expire-tokens"]:
                emulator.expire_tokens(tenant)
                return Answer(200, {})
        raise BadRequest(404, f"no admin route {method} /tenants/{tenant}/{'/'.join(rest)}")

    def _requests(self, query: dict[str, list[str]]) -> Answer:
        since = query.get("since", ["0"])[-1]
        if not since.isdigit():
            raise BadRequest(400, "since must be a non-negative integer")
        records = self._emulator.inspect.requests(since=int(since))
        return Answer(200, {"requests": [record.as_json() for record in records]})

    def _state(self) -> dict[str, Any]:
        emulator = self._emulator
        fail, stall = emulator.periodic_fault, emulator.periodic_stall
        return {
            "tenants": emulator.tenants(),
            "latency_ms": emulator.latency * 1000,
            "token_ttl": emulator.token_ttl,
            "fail": None if fail is None else {"status": fail.status, "every": fail.every, "burst": fail.burst},
            "stall": None if stall is None else {"seconds": stall.seconds, "every": stall.every},
        }

    def _knobs(self, body: dict[str, Any]) -> Answer:
        emulator = self._emulator
        if "latency_ms" in body:
            emulator.latency = _number(body, "latency_ms") / 1000
        if "token_ttl" in body:
            emulator.token_ttl = int(_number(body, "token_ttl"))
        if "fail" in body:
            emulator.periodic_fault = None if body["fail"] is None else periodic(_object(body, "fail"))
        if "stall" in body:
            emulator.periodic_stall = None if body["stall"] is None else periodic_stall(_object(body, "stall"))
        return Answer(200, self._state())

    def _add_tenant(self, body: dict[str, Any]) -> Answer:
        name = _field(body, "name", str)
        if self._emulator.has_tenant(name):
            raise BadRequest(409, f"tenant {name!r} exists already")
        try:
            key = self._emulator.add_tenant(
                name,
                client_id=body.get("client_id"),
                client_secret=body.get("client_secret"),
                editor=bool(body.get("editor", True)),
                quota=int(body.get("quota", 50)),
            )
        except ValueError as e:
            raise BadRequest(400, str(e)) from None
        return Answer(201, key)

    def _faults(self, tenant: str, body: dict[str, Any]) -> Answer:
        retry_after = body.get("retry_after")
        try:
            self._emulator.fail_next(
                tenant,
                status=int(_number(body, "status")),
                count=_count(body),
                retry_after=None if retry_after is None else str(retry_after),
                endpoint=str(body.get("endpoint", "api")),
            )
        except ValueError as e:
            raise BadRequest(400, str(e)) from None
        return Answer(200, {})


def periodic(spec: dict[str, Any]) -> Periodic:
    """A periodic fault rule from ``{"status", "every", "burst", "retry_after"}``."""
    status, every, burst = int(_number(spec, "status")), int(_number(spec, "every")), int(spec.get("burst", 1))
    if not 400 <= status <= 599 or every < 1 or burst < 1:
        raise BadRequest(400, "fail needs a 4xx or 5xx status, every >= 1 and burst >= 1")
    retry_after = spec.get("retry_after")
    return Periodic(status, every, burst, None if retry_after is None else str(retry_after))


def periodic_stall(spec: dict[str, Any]) -> PeriodicStall:
    """A periodic stall from ``{"seconds", "every", "method"}`` (method defaults to PATCH; null: any)."""
    seconds, every = _number(spec, "seconds"), int(spec.get("every", 1))
    if seconds < 0 or every < 1:
        raise BadRequest(400, "stall needs seconds >= 0 and every >= 1")
    method = spec.get("method", "PATCH")
    return PeriodicStall(seconds, every, None if method is None else str(method).upper())


def _body(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type[T]) -> T:
    value = body.get(name)
    if not isinstance(value, kind):
        raise BadRequest(400, f"{name} must be {kind.__name__}")
    return value


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise BadRequest(400, f"{name} must be an object or null")
    return value


def _number(body: dict[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(400, f"{name} must be a number")
    return float(value)


def _count(body: dict[str, Any]) -> int:
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise BadRequest(400, "count must be a positive integer")
    return count
