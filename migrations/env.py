"""Alembic environment: an injected connection, else ROTATOR_DATABASE_URL, else the service config.

``service.audit.migrate`` passes its connection in ``config.attributes["connection"]``;
the plain ``alembic`` CLI (configured by ``[tool.alembic]`` in pyproject.toml) connects
to ``ROTATOR_DATABASE_URL`` or to ``database.url`` of the configuration file.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from service.audit.tables import metadata
from service.config import SecretRef

config = context.config


def _url() -> sa.URL:
    explicit = os.environ.get("ROTATOR_DATABASE_URL")
    if explicit:
        return sa.make_url(explicit).set(drivername="postgresql+psycopg")
    from service.audit.db import database_url
    from service.config import config_path, load_settings

    database = load_settings(config_path(None)).database
    return database_url(database, password=_password(database.password))


def _password(ref: SecretRef | None) -> str | None:
    if ref is None:
        return None
    if ref.env is not None:
        return os.environ.get(ref.env)
    if ref.file is not None:
        return ref.file.read_text().rstrip("\n")
    raise SystemExit("database.password refers to Vault: use `rotator db upgrade` or set ROTATOR_DATABASE_URL")


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_server_default=False)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(_url(), poolclass=sa.NullPool)
    try:
        with engine.connect() as fresh:
            _run(fresh)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the triggers need a live database")
run_migrations_online()
