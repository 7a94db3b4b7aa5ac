"""The service's own token over months: renewal, capped renewals, re-login after revocation, revoke at exit."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from structlog.testing import capture_logs

from service.config import SecretRef, SourceConfig, VaultAuthConfig
from service.errors import VaultAuthError
from service.vault import Location, VaultSession, VaultSource
from tests.integration.vault.conftest import FIXED_NOW, ApproleFactory, FakeClock, SessionFactory

WHOAMI = Location(kind="token", mount="auth/token", path="lookup-self")


def whoami(session: VaultSession) -> dict[str, Any]:
    data: dict[str, Any] = session.request(lambda client: client.auth.token.lookup_self(), at=WHOAMI)["data"]
    return data


def lookup(root: hvac.Client, accessor: str) -> dict[str, Any]:
    data: dict[str, Any] = root.auth.token.lookup_accessor(accessor)["data"]
    return data


def expire_time(root: hvac.Client, accessor: str) -> datetime:
    return datetime.fromisoformat(lookup(root, accessor)["expire_time"])


@pytest.fixture
def reader_policy(make_policy: Any, kv2_mount: str) -> str:
    policy: str = make_policy({f"{kv2_mount}/data/*": ["read"]})
    return policy


def test_short_ttl_token_is_renewed_when_due(root: hvac.Client, make_session: SessionFactory, tmp_path: Path) -> None:
    """A 10s token is left alone before 2/3 of its TTL and renewed (renew-self) once that has passed."""
    token_file = tmp_path / "token"
    token_file.write_text(root.auth.token.create(policies=["default"], ttl="10s")["auth"]["client_token"])
    clock = FakeClock()
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(file=token_file)), clock=clock)
    session.login()  # lookup-self reports the remaining TTL in whole seconds: 9 or 10
    accessor = whoami(session)["accessor"]
    first_expiry = expire_time(root, accessor)

    clock.advance(5.9)  # under 67% of 9s
    session.maintain()
    not_yet = lookup(root, accessor)
    clock.advance(0.9)  # 68% of 10s
    session.maintain()
    renewed = lookup(root, accessor)

    assert not not_yet.get("last_renewal")
    assert renewed.get("last_renewal")
    assert datetime.fromisoformat(renewed["expire_time"]) > first_expiry
    assert whoami(session)["accessor"] == accessor


def test_renewal_capped_by_max_ttl_leads_to_login(make_approle: ApproleFactory, make_session: SessionFactory) -> None:
    """When Vault caps a renewal at the max TTL, the next due maintenance logs in afresh."""
    clock = FakeClock()
    session = make_session(make_approle(token_ttl="4s", token_max_ttl="4s"), clock=clock)
    session.login()
    first = whoami(session)["accessor"]
    time.sleep(1.1)  # real time: the max TTL now leaves less than the full 4s

    clock.advance(2.7)
    with capture_logs() as renewal_logs:
        session.maintain()
    after_renewal = whoami(session)["accessor"]
    clock.advance(2.7)
    session.maintain()

    renewals = [entry for entry in renewal_logs if entry["event"] == "vault.renew"]
    assert len(renewals) == 1
    assert renewals[0]["capped"] is True
    assert after_renewal == first
    assert whoami(session)["accessor"] != first


def test_refused_renewal_leads_to_login(
    root: hvac.Client, make_approle: ApproleFactory, make_session: SessionFactory
) -> None:
    """When renew-self is refused (the token was revoked), maintenance logs in again."""
    clock = FakeClock()
    session = make_session(make_approle(token_ttl="4s"), clock=clock)
    session.login()
    first = whoami(session)["accessor"]
    root.auth.token.revoke_accessor(first)

    clock.advance(3)
    with capture_logs() as logs:
        session.maintain()

    assert [entry["event"] for entry in logs] == ["vault.renew.refused", "vault.login"]
    assert whoami(session)["accessor"] != first


def test_expired_token_leads_to_login(make_approle: ApproleFactory, make_session: SessionFactory) -> None:
    """Once the token's TTL has run out (a long pause), maintenance logs in instead of renewing."""
    clock = FakeClock()
    session = make_session(make_approle(token_ttl="4s"), clock=clock)
    session.login()
    first = whoami(session)["accessor"]

    clock.advance(10)
    with capture_logs() as logs:
        session.maintain()

    assert [(entry["event"], entry.get("reason")) for entry in logs] == [("vault.login", "expiring")]
    assert whoami(session)["accessor"] != first


def test_read_after_revocation_logs_in_again_once(
    root: hvac.Client,
    kv2_mount: str,
    reader_policy: str,
    make_approle: ApproleFactory,
    make_session: SessionFactory,
) -> None:
    """A read refused because our token was revoked logs in again once and succeeds."""
    root.secrets.kv.v2.create_or_update_secret("acme", secret={"username": "u", "password": "p"}, mount_point=kv2_mount)
    session = make_session(make_approle(policies=[reader_policy]))
    session.login()
    source = VaultSource(session=session, clock=lambda: FIXED_NOW)
    first = whoami(session)["accessor"]
    root.auth.token.revoke_accessor(first)

    with capture_logs() as logs:
        credential = source.read(SourceConfig(mount=kv2_mount, path="acme"))

    assert credential.password == "p"
    logins = [entry for entry in logs if entry["event"] == "vault.login"]
    assert [entry["reason"] for entry in logins] == ["token_rejected"]
    assert whoami(session)["accessor"] != first


def test_concurrent_reads_after_revocation_log_in_once(
    root: hvac.Client,
    kv2_mount: str,
    reader_policy: str,
    make_approle: ApproleFactory,
    make_session: SessionFactory,
) -> None:
    """Eight threads refused at once after a revocation cause one login, and all their reads succeed."""
    root.secrets.kv.v2.create_or_update_secret("acme", secret={"username": "u", "password": "p"}, mount_point=kv2_mount)
    session = make_session(make_approle(policies=[reader_policy]))
    session.login()
    source = VaultSource(session=session, clock=lambda: FIXED_NOW)
    root.auth.token.revoke_accessor(whoami(session)["accessor"])
    start = threading.Barrier(8)
    results: list[str] = []

    def read() -> None:
        start.wait()
        results.append(source.read(SourceConfig(mount=kv2_mount, path="acme")).password)

    with capture_logs() as logs:
        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert results == ["p"] * 8
    assert [entry["event"] for entry in logs].count("vault.login") == 1


def test_revoked_supplied_token_is_an_auth_error(
    root: hvac.Client, kv2_mount: str, make_session: SessionFactory, tmp_path: Path
) -> None:
    """With token auth, a revoked token cannot be replaced: the read fails with VaultAuthError."""
    token_file = tmp_path / "token"
    token_file.write_text(root.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"])
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(file=token_file)))
    session.login()
    root.auth.token.revoke_accessor(whoami(session)["accessor"])

    with pytest.raises(VaultAuthError, match="token is invalid, expired or revoked"):
        VaultSource(session=session, clock=lambda: FIXED_NOW).read(SourceConfig(mount=kv2_mount, path="acme"))


def test_revoke_at_shutdown_revokes_our_login_token(
    root: hvac.Client, make_approle: ApproleFactory, make_session: SessionFactory
) -> None:
    """revoke() revokes a token we logged in for; a second revoke() does not raise."""
    session = make_session(make_approle())
    session.login()
    accessor = whoami(session)["accessor"]

    session.revoke()
    session.revoke()

    with pytest.raises(hvac.exceptions.InvalidRequest):
        lookup(root, accessor)
    assert session.token_expires_at() is None


def test_revoke_leaves_a_supplied_token_alone(root: hvac.Client, make_session: SessionFactory, tmp_path: Path) -> None:
    """revoke() does not revoke a token handed to the service (an agent or an operator owns it)."""
    token_file = tmp_path / "token"
    token_file.write_text(root.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"])
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(file=token_file)))
    session.login()
    accessor = whoami(session)["accessor"]

    session.revoke()

    assert lookup(root, accessor)["accessor"] == accessor


def test_token_expires_at_is_wall_clock(make_approle: ApproleFactory, make_session: SessionFactory) -> None:
    """token_expires_at() gives epoch seconds about one TTL from now, and moves with the clock."""
    clock = FakeClock()
    session = make_session(make_approle(token_ttl="10m"), clock=clock)
    session.login()
    now = time.time()

    expires = session.token_expires_at()

    assert expires is not None
    assert now + 595 < expires < now + 601


def test_root_token_never_expires(root_session: VaultSession) -> None:
    """A token without a TTL (root) has no expiry and is never renewed."""
    with capture_logs() as logs:
        root_session.maintain()

    assert root_session.token_expires_at() is None
    assert logs == []


def test_check_passes_and_recovers_a_revoked_login(
    root: hvac.Client, make_approle: ApproleFactory, make_session: SessionFactory
) -> None:
    """check() passes with a valid token, and logs in again when the token was revoked."""
    session = make_session(make_approle())
    session.login()
    session.check()
    root.auth.token.revoke_accessor(whoami(session)["accessor"])

    with capture_logs() as logs:
        session.check()

    assert [entry["event"] for entry in logs] == ["vault.login"]


def test_check_fails_on_revoked_supplied_token(root: hvac.Client, make_session: SessionFactory, tmp_path: Path) -> None:
    """check() raises VaultAuthError when the supplied token was revoked (readiness fails)."""
    token_file = tmp_path / "token"
    token_file.write_text(root.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"])
    session = make_session(VaultAuthConfig(method="token", token=SecretRef(file=token_file)))
    session.login()
    root.auth.token.revoke_accessor(whoami(session)["accessor"])

    with pytest.raises(VaultAuthError):
        session.check()
