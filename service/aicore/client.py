"""One target's Docker registry secrets in AI Core: edit, create, get, list, quota.

``AICoreClient`` implements ``service.ports.SecretStore`` over one pooled, keep-alive
httpx transport (``build_client`` makes it). API calls go through ``wire.Wire`` (prepared
requests straight to the transport, no ``httpx.Client`` per request); the XSUAA token fetch,
rare, goes through an ``httpx.Client`` over the same transport. Every call:

- sends ``Authorization: Bearer <token>`` from the target's ``TokenProvider``; on a 401
  it fetches a new token once and repeats the request; a second 401 is ``Unauthorized``;
- retries connection errors, timeouts, 429 and 5xx with full-jitter backoff, honouring
  ``Retry-After``, bounded by ``RetryPolicy.attempts`` and ``RetryPolicy.total``
  (PATCH and POST too: a PATCH sets the whole value, so repeating it is safe);
- never retries 400, 403 or 404, and maps every failure to ``service.errors``.

``create`` after an ambiguous failure (a timeout, a 5xx) may find that its first POST did
land: AI Core answers the retry with 409. ``create`` then PATCHes the same value, so a
successful return always means "the secret exists and holds this value" (a 409 on the
first attempt, when someone else created the secret meanwhile, is handled the same way).

Bodies carry the ``.dockerconfigjson`` as a JSON string; ``DockerConfigJson.reveal()`` is
called only while encoding a request body.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, TypeVar

import httpx

from service import __version__
from service.aicore.auth import TokenProvider
from service.aicore.direct import DirectTransport
from service.aicore.responses import (
    concealed_values,
    error_detail,
    error_for,
    request_id,
    sent_before_failing,
    transport_failure,
)
from service.aicore.retry import RetryPolicy, is_retryable_status, next_delay, parse_retry_after
from service.aicore.servicekey import ServiceKey
from service.aicore.tls import tls_context
from service.aicore.wire import Wire, environment_proxy
from service.config import RetryConfig
from service.errors import AICoreError, BadRequest, OutcomeUnknown, Unavailable
from service.logs import get_logger
from service.model import DockerConfigJson, WriteReceipt, secret_name_problem

log = get_logger("rotator.aicore")
# The aicore.http line is DEBUG: asking the standard logger first (a cached level check) skips
# building the structlog event that filter_by_level would drop anyway.
_levels = logging.getLogger("rotator.aicore")

SECRETS_PATH = "/v2/admin/dockerRegistrySecrets"
QUOTA_PATH = "/v2/admin/resourceQuota/dockerRegistrySecrets"
USER_AGENT = f"registry-secret-rotator/{__version__}"
# The spec's content type for PATCH; AI Core also takes application/json (SAP's SDK sends it).
PATCH_CONTENT_TYPE = b"application/merge-patch+json"
KEEPALIVE_EXPIRY_S = 60.0  # a kept connection idle longer is closed, not used (httpx's Limits.keepalive_expiry)
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class Quota:
    """How many Docker registry secrets a target holds, and how many it may hold."""

    count: int | None  # None when AI Core reports no usage
    max_count: int


class _Reply(NamedTuple):
    """A final answer and the token it was sent with (to mask it in error messages)."""

    response: httpx.Response
    token: str


class _Call(NamedTuple):
    """One logical API call, repeated as the retry policy allows (a tuple: built on every call)."""

    action: str  # for messages: "edit", "create", "get", "list", "quota"
    method: str
    url: httpx.URL
    secret: str = ""
    config: DockerConfigJson | None = None  # masked; revealed only by _content
    content_type: bytes = b"application/json"


class AICoreClient:
    """``SecretStore`` of one target. Thread-safe: share one per target."""

    def __init__(
        self,
        *,
        target: str,
        key: ServiceKey,
        wire: Wire,
        tokens: TokenProvider,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self._target = target
        self._key = key
        self._wire = wire
        self._tokens = tokens
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._page_size = page_size
        self._base = key.api_url.removesuffix("/v2")
        self._secrets_url = httpx.URL(self._base + SECRETS_PATH)
        self._quota_url = {
            flag: httpx.URL(self._base + QUOTA_PATH, params={"quotaOnly": flag}) for flag in ("true", "false")
        }

    @property
    def target(self) -> str:
        return self._target

    @property
    def api_host(self) -> str:
        return self._key.api_host

    @property
    def identity(self) -> str:
        """Whom a write reaches: the API host and the service key's client id (identifiers, not secrets)."""
        return f"{self._key.api_host} {self._key.client_id}"

    def edit(self, name: str, config: DockerConfigJson) -> WriteReceipt:
        """PATCH the whole ``.dockerconfigjson`` (202). ``SecretNotFound`` on 404."""
        call = _Call("edit", "PATCH", self._secret_url(name), name, config, PATCH_CONTENT_TYPE)
        return self._receipt(call, self._request(call))

    def create(self, name: str, config: DockerConfigJson) -> WriteReceipt:
        """POST a new secret (202); if it already exists (409), PATCH it to the same value."""
        self._check_name(name)
        call = _Call("create", "POST", self._secrets_url, name, config)
        reply = self._request(call)
        if reply.response.status_code == 409:
            log.info("aicore.secret.exists", target=self._target, secret=name, then="edit")
            return self.edit(name, config)
        return self._receipt(call, reply)

    def get(self, name: str) -> bool:
        """Whether the secret exists (AI Core returns its name only, never its data)."""
        call = _Call("get", "GET", self._secret_url(name), name)
        reply = self._request(call)
        if reply.response.status_code == 404:
            return False
        self._ensure_success(call, reply)
        return True

    def exists(self, name: str) -> bool:
        """``SecretStore.exists``: one GET of the secret's name."""
        return self.get(name)

    def list_names(self) -> list[str]:
        """Every secret name on the target, following ``$top`` / ``$skip`` pages."""
        names: list[str] = []
        seen: set[str] = set()
        while True:
            page, total = self._page(skip=len(names))
            fresh = [name for name in page if name not in seen]
            names += fresh
            seen.update(fresh)
            if len(page) < self._page_size or not fresh or len(names) >= total:  # a server ignoring $skip ends too
                return names

    def quota(self) -> Quota:
        """The live usage and limit of Docker registry secrets."""
        call = _Call("quota", "GET", self._quota_url["false"])
        body = self._json(call, self._ensure_success(call, self._request(call)))
        usage, limit = body.get("usage"), body.get("quota")
        count = usage.get("count") if isinstance(usage, dict) else None
        max_count = limit.get("maxCount") if isinstance(limit, dict) else None
        if not isinstance(max_count, int) or (count is not None and not isinstance(count, int)):
            raise self._unexpected(call, "a quota without integer quota.maxCount / usage.count")
        return Quota(count=count, max_count=max_count)

    def check(self) -> None:
        """Reach XSUAA (a token) and the API (the quota), one attempt, no retries: for ``rotator check``."""
        call = _Call("check", "GET", self._quota_url["true"])
        self._ensure_success(call, self._request(call, retry=RetryPolicy(attempts=1)))

    def close(self) -> None:
        """Close the pooled connections (the API's and the token fetch's)."""
        self._wire.close()
        self._tokens.close()

    # --- one call ---------------------------------------------------------------

    def _page(self, *, skip: int) -> tuple[list[str], int]:
        params = {"$top": str(self._page_size), "$skip": str(skip), "$count": "true"}
        call = _Call("list", "GET", httpx.URL(self._base + SECRETS_PATH, params=params))
        body = self._json(call, self._ensure_success(call, self._request(call)))
        resources, total = body.get("resources"), body.get("count")
        if not isinstance(resources, list) or not isinstance(total, int):
            raise self._unexpected(call, "a list without resources and count")
        page = [item["name"] for item in resources if isinstance(item, dict) and isinstance(item.get("name"), str)]
        return page, total

    def _request(self, call: _Call, *, retry: RetryPolicy | None = None) -> _Reply:
        """Send ``call`` until it gets a final answer or the retry policy gives up."""
        policy = retry or self._retry
        started = self._clock()
        attempt = 0
        may_have_landed = False  # a write sent in an earlier attempt whose answer never came
        error: AICoreError
        while True:
            attempt += 1
            try:
                reply = self._attempt(call)
            except Unavailable as e:  # no answer at all: connection, timeout, token endpoint down
                may_have_landed = may_have_landed or isinstance(e, OutcomeUnknown)
                error, retry_after = _with_attempts(e, attempt), None
            else:
                if not is_retryable_status(reply.response.status_code):
                    return reply
                error = self._error(call, reply, attempts=attempt)
                retry_after = parse_retry_after(reply.response.headers.get("retry-after"), now=_server_now(reply))
            delay = next_delay(
                policy, attempt=attempt, elapsed=self._clock() - started, retry_after=retry_after, rng=self._rng
            )
            if delay is None:
                raise self._unknown(call, error, attempt) if may_have_landed else error
            log.warning(
                "aicore.retry",
                target=self._target,
                secret=call.secret,
                action=call.action,
                attempt=attempt,
                status=error.status,
                error=error.code,
                delay_ms=round(delay * 1000),
            )
            self._sleep(delay)

    def _attempt(self, call: _Call) -> _Reply:
        """One exchange; a 401 gets one new token and one repeat."""
        token = self._tokens.token()
        response = self._send(call, token)
        if response.status_code != 401:
            return _Reply(response, token)
        log.info("aicore.token.rejected", target=self._target, action=call.action)
        self._tokens.invalidate(token)
        token = self._tokens.token()
        return _Reply(self._send(call, token), token)

    def _send(self, call: _Call, token: str) -> httpx.Response:
        headers = [(b"Authorization", b"Bearer " + token.encode("ascii"))]
        content = None
        if call.config is not None:
            headers.append((b"Content-Type", call.content_type))
            content = _content(call)
        started = self._clock()
        try:
            response = self._wire.send(call.method, call.url, headers=headers, content=content)
        except httpx.HTTPError as e:
            if call.config is not None and sent_before_failing(e):
                raise self._outcome_unknown(call, transport_failure(e)) from None
            raise self._unreachable(call, transport_failure(e)) from None
        if _levels.isEnabledFor(logging.DEBUG):
            self._log_exchange(call, response, started)
        return response

    def _log_exchange(self, call: _Call, response: httpx.Response, started: float) -> None:
        log.debug(
            "aicore.http",
            target=self._target,
            method=call.method,
            secret=call.secret,
            status=response.status_code,
            request_id=request_id(response),
            duration_ms=round((self._clock() - started) * 1000),
        )

    # --- answers ----------------------------------------------------------------

    def _receipt(self, call: _Call, reply: _Reply) -> WriteReceipt:
        self._ensure_success(call, reply)
        return WriteReceipt(status=reply.response.status_code, request_id=request_id(reply.response))

    def _ensure_success(self, call: _Call, reply: _Reply) -> _Reply:
        if not 200 <= reply.response.status_code < 300:
            raise self._error(call, reply)
        return reply

    def _json(self, call: _Call, reply: _Reply) -> dict[str, Any]:
        try:
            body = reply.response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise self._unexpected(call, "a body that is not a JSON object")
        return body

    def _error(self, call: _Call, reply: _Reply, *, attempts: int = 1) -> AICoreError:
        conceal = [*concealed_values(call.config), *(v for v in (reply.token, self._key.client_secret) if v)]
        return error_for(
            status=reply.response.status_code,
            detail=error_detail(reply.response, conceal=conceal),
            target=self._target,
            secret=call.secret,
            action=call.action,
            attempts=attempts,
        )

    def _unreachable(self, call: _Call, what: str) -> Unavailable:
        return Unavailable(
            f"AI Core at {self.api_host}: the {call.action} {_of(call)}on target {self._target!r} {what}",
            target=self._target,
            secret=call.secret,
        )

    def _outcome_unknown(self, call: _Call, what: str) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"AI Core at {self.api_host}: the {call.action} {_of(call)}on target {self._target!r} {what} "
            "after it was sent; it may have been applied",
            target=self._target,
            secret=call.secret,
        )

    def _unknown(self, call: _Call, last: AICoreError, attempts: int) -> OutcomeUnknown:
        """The final error of a write one of whose attempts may have landed: its outcome is unknown."""
        if isinstance(last, OutcomeUnknown):
            return last
        return _with_attempts(
            self._outcome_unknown(call, f"got no final answer (last: {last.code}, status {last.status})"), attempts
        )

    def _unexpected(self, call: _Call, what: str) -> AICoreError:
        return AICoreError(
            f"AI Core answered the {call.action} on target {self._target!r} with {what}",
            target=self._target,
            secret=call.secret,
        )

    # --- names and URLs ---------------------------------------------------------

    def _secret_url(self, name: str) -> httpx.URL:
        """The secret's URL, once its name is checked.

        Parsed at each call (about 16 us): a cache of them was 2.3 MB of an idle worker with
        5,000 pairs (their ``httpx.URL``s, parse results and strings) for under 1% of a
        written rotation's CPU (docs/performance.md, tenth round).
        """
        self._check_name(name)
        return httpx.URL(self._base + f"{SECRETS_PATH}/{name}")

    def _check_name(self, name: str) -> None:
        problem = secret_name_problem(name)
        if problem:
            raise BadRequest(f"target {self._target!r}: {problem}", target=self._target, secret=name)


def _content(call: _Call) -> bytes:
    """The body, as ``json.dumps`` of ``{"name"?, "data": {".dockerconfigjson": ...}}`` writes it."""
    assert call.config is not None
    data = '{"data": {".dockerconfigjson": ' + json.dumps(call.config.reveal()) + "}}"
    if call.method == "POST":
        data = '{"name": ' + json.dumps(call.secret) + ", " + data[1:]
    return data.encode()


def _of(call: _Call) -> str:
    return f"of secret {call.secret!r} " if call.secret else ""


def _server_now(reply: _Reply) -> datetime:
    """The server's ``Date`` (Retry-After dates are on its clock), else ours."""
    try:
        return parsedate_to_datetime(reply.response.headers["date"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


E = TypeVar("E", bound=AICoreError)


def _with_attempts(error: E, attempts: int) -> E:
    """The same error, saying how many attempts it took to give up."""
    if attempts == 1:
        return error
    return type(error)(
        f"{error.message} (gave up after {attempts} attempts)",
        target=error.target,
        secret=error.secret,
        status=error.status,
        aicore_code=error.aicore_code,
        request_id=error.request_id,
    )


def build_client(
    *,
    target: str,
    key: ServiceKey,
    timeout: float,
    retry: RetryConfig,
    max_connections: int,
    ca_file: str | None = None,
    proxies: Mapping[str, str] | None = None,
) -> AICoreClient:
    """One target's client over its own pooled keep-alive connections (XSUAA and API share them).

    ``proxies`` is ``urllib.request.getproxies()``, read from the environment when not given
    (the worker reads it once for all its targets: each read walks the whole environment).

    The transport is what ``httpx.Client(verify=..., limits=...)`` would build, with the proxy
    the Client would take from the environment for the API's URL. The token fetch shares it
    unless the environment gives XSUAA another proxy; then it gets a Client of its own.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=KEEPALIVE_EXPIRY_S
    )
    context = tls_context(key, ca_file=ca_file)
    proxy = environment_proxy(key.api_url, proxies=proxies)
    transport: httpx.BaseTransport
    if proxy is None:  # the usual case: http.client under httpx's contract (direct.py)
        transport = DirectTransport(context=context, max_keepalive=max_connections, keepalive_expiry=KEEPALIVE_EXPIRY_S)
    else:
        transport = httpx.HTTPTransport(verify=context, limits=limits, proxy=proxy)
    settings: dict[str, Any] = {"timeout": httpx.Timeout(timeout), "headers": {"User-Agent": USER_AGENT}}
    if environment_proxy(key.token_url, proxies=proxies) == proxy:
        http = httpx.Client(transport=transport, follow_redirects=False, **settings)
    else:
        http = httpx.Client(verify=context, limits=limits, follow_redirects=False, **settings)
    wire = Wire(transport=transport, timeout=httpx.Timeout(timeout), headers=api_headers(http))
    tokens = TokenProvider(key=key, http=http, target=target)
    return AICoreClient(target=target, key=key, wire=wire, tokens=tokens, retry=RetryPolicy.from_config(retry))


def api_headers(http: httpx.Client) -> httpx.Headers:
    """The Client's default headers (``User-Agent``, ``Accept-Encoding``, ...), accepting JSON as every API call."""
    headers = http.headers.copy()
    headers["Accept"] = "application/json"
    return headers
