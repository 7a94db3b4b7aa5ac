"""No password, token or Basic header value reaches a result, a log line or the emulator's record."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from service.model import VerificationOutcome as V
from service.model import VerificationResult
from service.registry import RegistryVerifier
from service.sandbox.processes import free_port
from service.sandbox.registry_emulator import RegistryEmulator
from tests.integration.registry.conftest import OTHER_PASSWORD, PASSWORD, credential, policy


def _forbidden(*emulators: RegistryEmulator) -> list[str]:
    """Every credential-bearing string a leak could show: passwords, Basic values, issued tokens."""
    basics = [
        base64.b64encode(f"{user}:{pw}".encode()).decode()
        for user, pw in (("alice", PASSWORD), ("bob", OTHER_PASSWORD))
    ]
    return [PASSWORD, OTHER_PASSWORD, *basics, *(t for e in emulators for t in e.issued_tokens())]


def _leaks(haystack: str, needles: list[str]) -> list[str]:
    return [needle for needle in needles if needle in haystack]


def test_every_outcome_is_free_of_credentials(
    emulator: RegistryEmulator,
    basic_emulator: RegistryEmulator,
    tls_emulator: RegistryEmulator,
    *,
    verifier: RegistryVerifier,
    ca_cert: Path,
    captured_logs: Callable[[], str],
) -> None:
    """ok, auth_failed, scope_denied, unreachable (refused, TLS) and unexpected: no secret anywhere."""
    bob = credential(username="bob", password=OTHER_PASSWORD)
    canary = policy(canary_repository="team/app")
    results: list[VerificationResult] = [
        verifier.verify(credential(), registry=emulator.url, policy=canary),
        verifier.verify(credential(), registry=basic_emulator.url, policy=policy()),
        verifier.verify(credential(), registry=tls_emulator.url, policy=policy(ca_cert=ca_cert)),
        verifier.verify(bob, registry=emulator.url, policy=canary),
        verifier.verify(credential(password=OTHER_PASSWORD), registry=basic_emulator.url, policy=policy()),
        verifier.verify(credential(), registry=tls_emulator.url, policy=policy()),
        verifier.verify(credential(), registry=f"http://127.0.0.1:{free_port()}", policy=policy()),
    ]
    emulator.revoke("alice")
    results.append(verifier.verify(credential(), registry=emulator.url, policy=canary))
    emulator.fail_with(500)
    results.append(verifier.verify(bob, registry=emulator.url, policy=policy()))

    assert {r.outcome for r in results} == {V.OK, V.AUTH_FAILED, V.SCOPE_DENIED, V.REGISTRY_UNREACHABLE, V.UNEXPECTED}
    forbidden = _forbidden(emulator, basic_emulator, tls_emulator)
    assert len(forbidden) > 4, "tokens were issued, so the search covers them"
    log_text = captured_logs()
    assert log_text.count('"event": "registry.verification"') == len(results)
    assert _leaks(log_text, forbidden) == []
    assert _leaks(repr(results), forbidden) == []
    recorded = repr([e.requests for e in (emulator, basic_emulator, tls_emulator)])
    assert _leaks(recorded, forbidden) == []


def test_registry_echoing_the_password_is_masked(captured_logs: Callable[[], str]) -> None:
    """A hostile registry that puts the password into its challenge does not get it into the result or logs."""

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": f'Basic realm="r", error="{PASSWORD}"'})

    with httpx.Client(transport=httpx.MockTransport(echo)) as client, RegistryVerifier(http=client) as verifier:
        result = verifier.verify(credential(), registry="registry.example", policy=policy())
    assert result.outcome == V.AUTH_FAILED
    assert PASSWORD not in result.detail
    assert "[REDACTED]" in result.detail
    assert PASSWORD not in captured_logs()


def test_log_line_names_registry_user_and_outcome(
    emulator: RegistryEmulator, verifier: RegistryVerifier, captured_logs: Callable[[], str]
) -> None:
    """One JSON event per verification, with fields an operator can filter on."""
    verifier.verify(credential(password="wrong-password-here"), registry=emulator.url, policy=policy())
    [line] = [json.loads(line) for line in captured_logs().splitlines() if "registry.verification" in line]
    assert line["level"] == "warning"
    assert (line["registry"], line["username"], line["outcome"], line["status"]) == (
        emulator.url,
        "alice",
        "auth_failed",
        401,
    )
    assert "wrong-password-here" not in json.dumps(line)
