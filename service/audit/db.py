"""The engine, and the one place where SQLAlchemy / psycopg errors become ``AuditError``.

Messages carry the action, the SQLSTATE and (for integrity errors) the constraint, never
the statement, its parameters or the server's text for data errors, which can echo values.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

from service.config import DatabaseConfig
from service.errors import AuditError, AuditMisconfigured, AuditUnavailable, RotatorError

APPLICATION_NAME = "rotator"
DRIVER = "postgresql+psycopg"
# Server texts that are ours (trigger refusals) or name no value (permission denied).
_SAFE_TEXT_STATES = frozenset({"P0001", "42501"})


def database_url(config: DatabaseConfig, *, password: str | None) -> URL:
    """The configured URL on the psycopg 3 driver, with ``password`` set (URL objects mask it)."""
    url = make_url(config.url).set(drivername=DRIVER)
    return url.set(password=password) if password is not None else url


def make_engine(config: DatabaseConfig, *, password: str | None) -> Engine:
    """A pooled engine: pre-ping, connect timeout, keepalives, ``application_name=rotator``."""
    return sa.create_engine(
        database_url(config, password=password),
        pool_size=config.pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={
            "connect_timeout": max(2, round(config.connect_timeout.total_seconds())),
            "application_name": APPLICATION_NAME,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    )


def where(engine: Engine) -> str:
    """``host:port/database`` of an engine, for messages (never the password)."""
    url = engine.url
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _sqlstate(error: BaseException) -> str | None:
    cause = getattr(error, "orig", error)
    return getattr(cause, "sqlstate", None)


def describe(error: BaseException) -> str:
    """A safe one-line summary of a database error."""
    cause = getattr(error, "orig", None) or error
    state = _sqlstate(error)
    text = type(cause).__name__
    diag = getattr(cause, "diag", None)
    if diag is not None and state in _SAFE_TEXT_STATES and diag.message_primary:
        text += f": {diag.message_primary}"
    elif diag is not None and diag.constraint_name:
        text += f": constraint {diag.constraint_name}"
    return f"{text} (SQLSTATE {state})" if state else text


_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


# libpq reports connection failures as text without a SQLSTATE. These name the cause; the
# captured names are identifiers (role, database, host), never a password. The server's
# FATAL texts are matched in English (lc_messages); other languages fall back to `describe`.
_MISCONFIGURED = (
    (
        re.compile(r'authentication failed for user "([^"]*)"'),
        "authentication failed for role {!r} (database.password)",
    ),
    (re.compile(r'role "([^"]*)" does not exist'), "role {!r} does not exist (the user in database.url)"),
    (re.compile(r'database "([^"]*)" does not exist'), "database {!r} does not exist (database.url)"),
    (re.compile(r'no pg_hba\.conf entry for host "[^"]*", user "([^"]*)"'), "pg_hba.conf admits no role {!r}"),
)
_UNREACHABLE = (
    (
        re.compile(r"failed to resolve host '([^']*)'" + r'|could not translate host name "([^"]*)"'),
        "DNS: no host {!r}",
    ),
    (re.compile(r'server at "([^"]*)", port (\d+) failed: Connection refused'), "connection refused by {}:{}"),
    (re.compile(r"Connection refused"), "connection refused"),
    (re.compile(r"timeout expired|timed out"), "connection timed out"),
    (re.compile(r"the database system is (?:starting up|shutting down|in recovery mode)"), "the server is not ready"),
)


def cause(error: BaseException) -> tuple[str | None, bool]:
    """Why a connection failed, in our words, and whether it is a configuration error."""
    text = str(getattr(error, "orig", None) or error)
    for patterns, misconfigured in ((_MISCONFIGURED, True), (_UNREACHABLE, False)):
        for pattern, message in patterns:
            match = pattern.search(text)
            if match:
                return message.format(*(group for group in match.groups() if group is not None)), misconfigured
    return None, False


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn database errors raised inside into ``AuditUnavailable`` / ``AuditMisconfigured`` / ``AuditError``."""
    try:
        yield
    except RotatorError:
        raise
    except _UNAVAILABLE as e:
        reason, misconfigured = cause(e)
        if misconfigured:
            raise AuditMisconfigured(f"{action}: database refused the connection: {reason}") from None
        raise AuditUnavailable(f"{action}: database unavailable ({reason or describe(e)})") from None
    except (sa_exc.SQLAlchemyError, psycopg.Error) as e:
        raise AuditError(f"{action}: {describe(e)}") from None
