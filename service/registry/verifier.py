"""``RegistryVerifier``: check a credential against a registry's v2 API before it is written.

The flow a docker client follows when it pulls:

1. ``GET /v2/`` without credentials. A 401 carries a ``WWW-Authenticate`` challenge.
2. Basic: retry with the username and password. Bearer: ask the challenge's realm for
   a token (Basic auth, ``service``, and ``scope=repository:REPO:pull`` when a canary
   repository is configured), then use the token. A registry that answers the first
   request anonymously still gets the credential over Basic: one that checks it may refuse.
3. ``GET /v2/`` again, or ``HEAD`` the canary's manifest, with that authorisation.

``verify`` never raises for what a registry or the network does: every answer becomes a
``VerificationResult``. One ``httpx.Client`` per CA bundle keeps connections (and TLS
sessions) across verifications; the timeout comes from each call's policy.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from service import __version__
from service.logs import get_logger
from service.model import RegistryCredential, VerificationOutcome, VerificationResult, VerifyPolicy
from service.registry import endpoints
from service.registry.challenge import Challenge, parse_challenges, preferred
from service.registry.classify import (
    Finding,
    classify_answer,
    classify_token_status,
    classify_transport_error,
    ok,
    result_of,
    unexpected,
)

log = get_logger("rotator.registry")
USER_AGENT = f"registry-secret-rotator/{__version__}"
MAX_BODY = 64 * 1024  # /v2/ answers and tokens are small; anything larger is not a registry talking


class _Stop(Exception):
    """Ends a verification early with its finding; never leaves this module."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.outcome)
        self.finding = finding


@dataclass(frozen=True, slots=True)
class _Answer:
    """What a registry answered, body read (and capped) before the connection went back to the pool."""

    status: int
    headers: httpx.Headers
    body: bytes = field(repr=False)


class _BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on each request."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class RegistryVerifier:
    """Implements ``ports.RegistryVerifier`` over the Docker Registry HTTP API v2."""

    def __init__(self, *, http: httpx.Client | None = None) -> None:
        """``http`` answers policies without ``ca_cert`` (the caller closes it); others get clients of their own."""
        self._http = http
        self._clients: dict[Path | None, httpx.Client] = {}
        self._lock = threading.Lock()

    def verify(self, credential: RegistryCredential, *, registry: str, policy: VerifyPolicy) -> VerificationResult:
        """Ask ``registry`` whether it accepts ``credential``; classify the answer, never raise for it."""
        if policy.mode == "none":
            return VerificationResult(VerificationOutcome.SKIPPED, registry, "verification is not configured")
        started = time.monotonic()
        attempt = _Attempt(self, credential, registry=registry, policy=policy)
        try:
            finding = attempt.run()
        except _Stop as stop:
            finding = stop.finding
        result = result_of(finding, registry=registry, secrets=attempt.secrets())
        _log(result, credential=credential, duration_ms=round((time.monotonic() - started) * 1000))
        return result

    def client_for(self, ca_cert: Path | None) -> httpx.Client:
        """The shared client that trusts ``ca_cert`` in addition to the default CAs."""
        if ca_cert is None and self._http is not None:
            return self._http
        with self._lock:
            client = self._clients.get(ca_cert)
            if client is None:
                client = httpx.Client(verify=_trust(ca_cert), headers={"User-Agent": USER_AGENT})
                self._clients[ca_cert] = client
            return client

    def close(self) -> None:
        """Close the clients this verifier made (not one passed in)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> RegistryVerifier:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _trust(ca_cert: Path | None) -> ssl.SSLContext:
    context = httpx.create_ssl_context()
    if ca_cert is not None:
        context.load_verify_locations(cafile=ca_cert)
    return context


def _log(result: VerificationResult, *, credential: RegistryCredential, duration_ms: int) -> None:
    level = "info" if result.ok else "warning"
    getattr(log, level)(
        "registry.verification",
        registry=result.registry,
        username=credential.username,
        outcome=str(result.outcome),
        status=result.status,
        detail=result.detail,
        duration_ms=duration_ms,
    )


class _Attempt:
    """One verification: the requests of one credential against one registry."""

    def __init__(
        self, verifier: RegistryVerifier, credential: RegistryCredential, *, registry: str, policy: VerifyPolicy
    ) -> None:
        self._verifier = verifier
        self._credential = credential
        self._registry = registry
        self._policy = policy
        self._timeout = policy.timeout.total_seconds()
        self._token = ""

    def secrets(self) -> tuple[str, ...]:
        return (self._credential.password, self._token)

    def run(self) -> Finding:
        base = self._base()
        canary = self._canary()
        client = self._client()
        first = self._send(client, "GET", f"{base}/v2/")
        auth = self._authorisation(client, first, base=base, canary=canary)
        if canary is None:
            answer = self._send(client, "GET", f"{base}/v2/", auth=auth)
            return self._judge(answer, canary=None, anonymous=200 <= first.status < 300)
        headers = {"Accept": endpoints.MANIFEST_TYPES}
        answer = self._send(client, "HEAD", endpoints.manifest_url(base, canary), auth=auth, headers=headers)
        return self._judge(answer, canary=str(canary), anonymous=False)

    def _base(self) -> str:
        try:
            return endpoints.api_base(self._registry)
        except ValueError:
            raise _Stop(unexpected("not a registry host")) from None

    def _canary(self) -> endpoints.Canary | None:
        text = self._policy.canary_repository
        if not text:
            return None
        try:
            return endpoints.parse_canary(text, registry=self._registry)
        except ValueError as e:
            raise _Stop(unexpected(str(e))) from None

    def _client(self) -> httpx.Client:
        try:
            return self._verifier.client_for(self._policy.ca_cert)
        except (OSError, ssl.SSLError):
            raise _Stop(unexpected(f"cannot load verify.ca_cert {self._policy.ca_cert}")) from None

    def _send(
        self,
        client: httpx.Client,
        method: str,
        url: str | httpx.URL,
        *,
        auth: httpx.Auth | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Answer:
        """One request; its answer must arrive, body included, within the policy's timeout."""
        deadline = time.monotonic() + self._timeout
        try:
            request = client.build_request(method, url, headers=headers, timeout=self._timeout)
            response = client.send(request, auth=auth, stream=True)
            try:
                body = _read_capped(response, deadline=deadline)
            finally:
                response.close()
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise _Stop(classify_transport_error(e)) from None
        return _Answer(response.status_code, response.headers, body)

    def _authorisation(
        self, client: httpx.Client, first: _Answer, *, base: str, canary: endpoints.Canary | None
    ) -> httpx.Auth:
        if 200 <= first.status < 300:
            return self._basic()  # anonymous access: a registry that checks credentials still may refuse
        if first.status != 401:
            raise _Stop(unexpected(f"the registry answered {first.status} to an anonymous GET /v2/", first.status))
        challenges = parse_challenges(first.headers.get_list("www-authenticate"))
        challenge = preferred(challenges)
        if challenge is None:
            schemes = ", ".join(sorted({c.scheme for c in challenges})) or "none"
            raise _Stop(unexpected(f"unsupported authentication challenge ({schemes})", 401))
        if challenge.scheme == "basic":
            return self._basic()
        return _BearerAuth(self._fetch_token(client, challenge, base=base, canary=canary))

    def _basic(self) -> httpx.Auth:
        return httpx.BasicAuth(self._credential.username, self._credential.password)

    def _fetch_token(
        self, client: httpx.Client, challenge: Challenge, *, base: str, canary: endpoints.Canary | None
    ) -> str:
        realm = challenge.realm or ""
        try:
            url = endpoints.token_url(realm, service=challenge.service, scope=canary.scope if canary else None)
            allowed = endpoints.realm_allowed(realm, base=base)
        except httpx.InvalidURL:
            raise _Stop(unexpected("the Bearer challenge names an invalid token realm", 401)) from None
        if not allowed:
            scheme = url.scheme or "no scheme"
            raise _Stop(unexpected(f"refusing to send the credential to a token realm over {scheme}", 401))
        answer = self._send(client, "GET", url, auth=self._basic())
        refused = classify_token_status(answer.status)
        if refused is not None:
            raise _Stop(refused)
        self._token = _token_from(answer)
        return self._token

    def _judge(self, answer: _Answer, *, canary: str | None, anonymous: bool) -> Finding:
        challenges = parse_challenges(answer.headers.get_list("www-authenticate"))
        error = next((c.error for c in challenges if c.error), None)
        finding = classify_answer(answer.status, error=error, canary=canary)
        if anonymous and finding.outcome == VerificationOutcome.OK:
            return ok("the registry allows anonymous access and did not refuse the credential", finding.status)
        return finding


def _read_capped(response: httpx.Response, *, deadline: float) -> bytes:
    """The body, refused past ``MAX_BODY`` bytes or past the deadline (a registry that drips)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_BODY:
            raise _Stop(unexpected(f"the answer is larger than {MAX_BODY // 1024} KiB", response.status_code))
        if time.monotonic() > deadline:
            raise _Stop(Finding(VerificationOutcome.REGISTRY_UNREACHABLE, "timed out (read)"))
    return bytes(body)


def _token_from(answer: _Answer) -> str:
    """The ``token`` (or OAuth ``access_token``) of a token endpoint's JSON answer."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        raise _Stop(unexpected("the token endpoint answered without JSON", answer.status)) from None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise _Stop(unexpected("the token endpoint answered without a token", answer.status))
    return token
