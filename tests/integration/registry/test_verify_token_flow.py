"""Verification against the token-auth registry emulator: every outcome of the Bearer and Basic flows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from service.model import VerificationOutcome as V
from service.registry import RegistryVerifier
from service.sandbox.registry_emulator import RegistryEmulator
from tests.integration.registry.conftest import OTHER_PASSWORD, credential, policy


def _trail(emulator: RegistryEmulator) -> list[tuple[str, str, str | None]]:
    return [(r.method, r.path, r.auth_scheme) for r in emulator.requests]


def test_good_credential_is_ok_via_bearer_token(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """GET /v2/, a token from the realm with Basic auth and the service, then GET /v2/ with the token."""
    result = verifier.verify(credential(), registry=emulator.url, policy=policy())
    assert (result.outcome, result.status, result.registry) == (V.OK, 200, emulator.url)
    assert _trail(emulator) == [("GET", "/v2/", None), ("GET", "/token", "basic"), ("GET", "/v2/", "bearer")]
    assert emulator.requests[1].query == {"service": ["registry-emulator"]}


def test_canary_is_ok_with_pull_scope(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """With a canary, the token asks for pull on it and its manifest is HEADed with the token."""
    result = verifier.verify(credential(), registry=emulator.url, policy=policy(canary_repository="team/app"))
    assert (result.outcome, result.status) == (V.OK, 200)
    assert emulator.requests[1].query["scope"] == ["repository:team/app:pull"]
    assert _trail(emulator)[-1] == ("HEAD", "/v2/team/app/manifests/latest", "bearer")


def test_wrong_password_is_auth_failed(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """The token endpoint's 401 is auth_failed, and nothing is asked with a token afterwards."""
    result = verifier.verify(credential(password="not-the-password"), registry=emulator.url, policy=policy())
    assert (result.outcome, result.status) == (V.AUTH_FAILED, 401)
    assert "token endpoint refused" in result.detail
    assert _trail(emulator) == [("GET", "/v2/", None), ("GET", "/token", "basic")]


def test_unknown_user_is_auth_failed(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """A username the registry does not know is refused like a wrong password."""
    result = verifier.verify(credential(username="mallory"), registry=emulator.url, policy=policy())
    assert result.outcome == V.AUTH_FAILED


def test_revoked_credential_is_auth_failed_on_recheck(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """A credential that verified once is auth_failed after the registry revokes it."""
    assert verifier.verify(credential(), registry=emulator.url, policy=policy()).outcome == V.OK
    emulator.revoke("alice")
    result = verifier.verify(credential(), registry=emulator.url, policy=policy())
    assert (result.outcome, result.status) == (V.AUTH_FAILED, 401)


def test_credential_without_pull_on_canary_is_scope_denied(
    emulator: RegistryEmulator, verifier: RegistryVerifier
) -> None:
    """A token granted with empty access gets 401 insufficient_scope on the canary: scope_denied."""
    bob = credential(username="bob", password=OTHER_PASSWORD)
    result = verifier.verify(bob, registry=emulator.url, policy=policy(canary_repository="team/app"))
    assert (result.outcome, result.status) == (V.SCOPE_DENIED, 401)
    assert "team/app:latest" in result.detail


def test_same_credential_without_canary_is_ok(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """Without a canary only authentication is checked: bob's login is fine."""
    bob = credential(username="bob", password=OTHER_PASSWORD)
    assert verifier.verify(bob, registry=emulator.url, policy=policy()).outcome == V.OK


def test_missing_canary_tag_is_unexpected(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """A canary tag the registry does not have is a configuration problem: unexpected, naming the key."""
    result = verifier.verify(credential(), registry=emulator.url, policy=policy(canary_repository="team/app:v9"))
    assert (result.outcome, result.status) == (V.UNEXPECTED, 404)
    assert "verify.canary_repository" in result.detail


def test_malformed_canary_is_unexpected_without_a_request(
    emulator: RegistryEmulator, verifier: RegistryVerifier
) -> None:
    """A canary name distribution would refuse stops verification before any request."""
    result = verifier.verify(credential(), registry=emulator.url, policy=policy(canary_repository="Team/App"))
    assert result.outcome == V.UNEXPECTED
    assert emulator.requests == []


def test_server_error_is_unexpected(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """A registry answering 500 is unexpected, with the status kept."""
    emulator.fail_with(500)
    result = verifier.verify(credential(), registry=emulator.url, policy=policy())
    assert (result.outcome, result.status) == (V.UNEXPECTED, 500)


def test_mode_none_is_skipped_without_a_request(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """verify.mode = "none" returns skipped and asks nothing."""
    result = verifier.verify(credential(), registry=emulator.url, policy=policy(mode="none"))
    assert result.outcome == V.SKIPPED
    assert result.ok
    assert emulator.requests == []


def test_connections_are_reused_across_verifications(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """Three verifications (nine requests) travel over one kept-alive connection."""
    for _ in range(3):
        assert verifier.verify(credential(), registry=emulator.url, policy=policy()).outcome == V.OK
    assert len(emulator.requests) == 9
    assert emulator.connections_accepted == 1


def test_concurrent_verifications_share_one_client(emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """Rotations verify in parallel: eight threads at once all get their own right answer."""
    bob = credential(username="bob", password=OTHER_PASSWORD)
    jobs = [(credential(), V.OK), (bob, V.SCOPE_DENIED), (credential(password="bad"), V.AUTH_FAILED)] * 8
    canary = policy(canary_repository="team/app")
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(
            pool.map(lambda job: verifier.verify(job[0], registry=emulator.url, policy=canary).outcome, jobs)
        )
    assert outcomes == [expected for _, expected in jobs]
    assert emulator.connections_accepted <= 8


def test_good_credential_is_ok_via_basic(basic_emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """A Basic challenge is answered with the username and password."""
    result = verifier.verify(credential(), registry=basic_emulator.url, policy=policy())
    assert (result.outcome, result.status) == (V.OK, 200)
    assert _trail(basic_emulator) == [("GET", "/v2/", None), ("GET", "/v2/", "basic")]


def test_wrong_password_via_basic_is_auth_failed(basic_emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """A 401 to the Basic retry is auth_failed."""
    result = verifier.verify(credential(password="nope"), registry=basic_emulator.url, policy=policy())
    assert (result.outcome, result.status) == (V.AUTH_FAILED, 401)


def test_basic_canary_ok_and_forbidden(basic_emulator: RegistryEmulator, verifier: RegistryVerifier) -> None:
    """Basic with a canary: alice may pull team/app (ok); bob gets 403 (scope_denied)."""
    canary = policy(canary_repository="team/app")
    assert verifier.verify(credential(), registry=basic_emulator.url, policy=canary).outcome == V.OK
    bob = credential(username="bob", password=OTHER_PASSWORD)
    result = verifier.verify(bob, registry=basic_emulator.url, policy=canary)
    assert (result.outcome, result.status) == (V.SCOPE_DENIED, 403)


def test_anonymous_registry_still_gets_the_credential(verifier: RegistryVerifier) -> None:
    """A registry that answers /v2/ anonymously is asked again with Basic auth; ok says it was anonymous."""
    with RegistryEmulator(auth="none") as open_registry:
        result = verifier.verify(credential(), registry=open_registry.url, policy=policy())
        trail = _trail(open_registry)
    assert result.outcome == V.OK
    assert "anonymous" in result.detail
    assert trail == [("GET", "/v2/", None), ("GET", "/v2/", "basic")]
