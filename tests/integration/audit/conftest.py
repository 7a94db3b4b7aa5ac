"""Fixtures for the audit package: an engine on a fresh database, migrated or not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from service.audit import migrate
from service.audit.db import make_engine
from service.audit.store import AuditStore
from service.config import DatabaseConfig
from service.model import AuditEvent, EventType, Fingerprint, Trigger


@pytest.fixture
def empty_engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh, empty database."""
    engine = make_engine(DatabaseConfig(url=database_url, pool_size=4), password=None)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """An engine on a fresh database migrated to head."""
    migrate.upgrade(empty_engine)
    return empty_engine


@pytest.fixture
def store(engine: Engine) -> AuditStore:
    """An AuditStore on the migrated database."""
    return AuditStore(engine)


def make_event(**overrides: Any) -> AuditEvent:
    """An intent for eu/ghcr-pull unless overridden."""
    values: dict[str, Any] = {
        "event": EventType.INTENT,
        "run_id": "run-1",
        "target": "eu",
        "api_host": "api.ai.eu.example.com",
        "secret": "ghcr-pull",
        "registries": ("ghcr.io",),
        "trigger": Trigger.SCHEDULE,
        "actor": "rotator-0/0.1.0",
        "source_mount": "secret",
        "source_path": "registries/ghcr",
        "source_version": 3,
        "vault_request_id": "a1b2c3",
        "registry_username": "robot$ci",
        "fingerprint": Fingerprint(key_id="k1", digest="ab" * 32),
        "previous_fingerprint": Fingerprint(key_id="k1", digest="cd" * 32),
    }
    values.update(overrides)
    return AuditEvent(**values)
