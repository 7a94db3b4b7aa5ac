""" "database unavailable" names its cause; a refused login or a missing role or database is a config error (exit 2)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.audit import schema
from service.audit.db import make_engine
from service.cli import main
from service.config import DatabaseConfig
from service.errors import AuditMisconfigured, AuditUnavailable
from service.sandbox.postgres import EmbeddedPostgres
from service.sandbox.processes import free_port

ROLE = "pw_checked"


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[str, str]]:
    """An own PostgreSQL whose pg_hba.conf checks one role's password (the shared one trusts everyone)."""
    password = secrets.token_hex(12)
    with EmbeddedPostgres() as server:
        admin = make_url(server.url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
            hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
            conn.execute("SELECT pg_reload_conf()")
        yield server.url, password


def current_error(url: str, *, password: str | None = None) -> AuditUnavailable | AuditMisconfigured:
    engine = make_engine(DatabaseConfig(url=url, connect_timeout="2s"), password=password)
    try:
        with pytest.raises((AuditUnavailable, AuditMisconfigured)) as caught:
            schema.current(engine)
    finally:
        engine.dispose()
    return caught.value


def test_connection_refused_is_named() -> None:
    """A closed port: unavailable (exit 3), "connection refused by host:port"."""
    port = free_port()
    error = current_error(f"postgresql+psycopg://rotator@127.0.0.1:{port}/rotator")
    assert isinstance(error, AuditUnavailable)
    assert f"database unavailable (connection refused by 127.0.0.1:{port})" in str(error)


def test_unknown_host_is_named() -> None:
    """A host name DNS does not know: unavailable, naming the host."""
    error = current_error("postgresql+psycopg://rotator@no-such-host.invalid:5432/rotator")
    assert isinstance(error, AuditUnavailable)
    assert "database unavailable (DNS: no host 'no-such-host.invalid')" in str(error)


def test_missing_database_is_a_config_error(postgres_admin_url: str) -> None:
    """A database that does not exist is a configuration error naming it."""
    url = make_url(postgres_admin_url).set(database="no_such_database").render_as_string(hide_password=False)
    error = current_error(url)
    assert isinstance(error, AuditMisconfigured)
    assert "database 'no_such_database' does not exist" in str(error)


def test_missing_role_is_a_config_error(postgres_admin_url: str) -> None:
    """A role that does not exist is a configuration error naming it."""
    url = make_url(postgres_admin_url).set(username="no_such_role").render_as_string(hide_password=False)
    error = current_error(url)
    assert isinstance(error, AuditMisconfigured)
    assert "role 'no_such_role' does not exist" in str(error)


def test_wrong_password_is_a_config_error_without_the_password(password_server: tuple[str, str]) -> None:
    """A refused password names the role and the setting, never the password given."""
    url, _ = password_server
    wrong = "sentinel-wrong-password-41"
    error = current_error(make_url(url).set(username=ROLE).render_as_string(), password=wrong)
    assert isinstance(error, AuditMisconfigured)
    assert f"authentication failed for role '{ROLE}' (database.password)" in str(error)
    assert wrong not in str(error)


def test_right_password_connects(password_server: tuple[str, str]) -> None:
    """The same role with its password gets through (the refusal above is the password's doing)."""
    url, password = password_server
    engine = make_engine(DatabaseConfig(url=make_url(url).set(username=ROLE).render_as_string()), password=password)
    try:
        assert schema.current(engine) is None
    finally:
        engine.dispose()


def test_cli_exits_2_on_a_missing_database(
    postgres_admin_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rotator db current` against a missing database: one error line, exit 2 (not 3)."""
    monkeypatch.delenv("ROTATOR_CONFIG", raising=False)
    url = make_url(postgres_admin_url).set(database="no_such_database").render_as_string(hide_password=False)
    config = tmp_path / "rotator.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    assert main(["db", "current", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert "database 'no_such_database' does not exist" in err[0]
