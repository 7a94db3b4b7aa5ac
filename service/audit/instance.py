"""``InstanceLock``: a worker's liveness as other replicas see it, without heartbeats.

Each worker process holds, for its whole life, a session-level advisory lock on a random
63-bit key, on one dedicated connection taken out of the pool. Leases record that key
(``owner_lock``). When the process dies, even by ``kill -9``, its session ends and the
lock disappears from ``pg_locks``, so its leases are free at once. In ``pg_locks`` a
bigint advisory key shows as ``classid`` = high 32 bits, ``objid`` = low 32 bits,
``objsubid`` = 1.
"""

from __future__ import annotations

import math
import secrets
import time
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from service.audit.db import translated, where
from service.errors import AuditError
from service.logs import get_logger

KEY_ATTEMPTS = 5
log = get_logger(__name__)

# The SQL that tells whether the owner of a lease is alive; also used by the state store.
LIVE_OWNER_LOCKS = """
SELECT (classid::bigint << 32) | objid::bigint
FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def random_key() -> int:
    """A positive 63-bit advisory lock key."""
    return secrets.randbits(63) or 1


class InstanceLock:
    """``with InstanceLock(engine, "rotator-0") as lock: lock.key``: held until closed or the process ends."""

    def __init__(self, engine: Engine, instance_id: str) -> None:
        self._engine = engine
        self.instance_id = instance_id
        self._key: int | None = None
        self._connection: Connection | None = None
        self._taken = False  # acquire() succeeded once: a lost session is then taken back
        self._closed = False
        self._checked_at = -math.inf  # monotonic time the lock was last seen held

    @property
    def key(self) -> int:
        """The advisory lock key this instance holds; ``AuditError`` before ``acquire``."""
        if self._key is None:
            raise AuditError(f"instance lock of {self.instance_id!r} is not acquired")
        return self._key

    def acquire(self) -> None:
        """Open the dedicated connection and take a fresh key on it."""
        if self._connection is not None:
            return
        with translated(f"acquire the instance lock at {where(self._engine)}"):
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            connection.detach()  # closed for real on close(): the session, and the lock, end
            self._connection = connection
            self._key = self._take_key(connection)
        self._taken, self._closed = True, False
        log.info("instance.locked", instance=self.instance_id, key=self._key)

    @staticmethod
    def _take_key(connection: Connection) -> int:
        for _ in range(KEY_ATTEMPTS):
            key = random_key()
            if connection.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one():
                return key
        raise AuditError("no free instance lock key after several random tries")

    def ensure(self, *, max_age: float = 0.0) -> int:
        """The key, after making sure it is still held; a lost session (failover) gets a new session and key.

        ``max_age``: a lock seen held less than that many seconds ago is not asked again. The
        claims pass about a second: their grant statement requires the key to be live in
        ``pg_locks`` anyway, so an answer a second old can delay taking a lost lock back by
        that second, but never grant anything to a lost one.

        While the database is down this raises ``AuditUnavailable`` and is tried again at the
        next call: nothing is claimed meanwhile (the grant itself also requires the key to be
        live). Only ``close()`` ends the instance for good.
        """
        if self._closed or not self._taken:
            return self.key  # closed on purpose, or never taken (read-only commands): AuditError
        if self._connection is not None and time.monotonic() - self._checked_at < max_age:
            return self.key
        if self._connection is not None and self.held():
            self._checked_at = time.monotonic()
            return self.key
        if self._connection is not None:
            log.warning("instance.lock_lost", instance=self.instance_id, key=self._key)
            self._drop()
        self.acquire()
        self._checked_at = time.monotonic()
        return self.key

    def held(self) -> bool:
        """True while the dedicated session is alive and still holds the key."""
        if self._connection is None or self._key is None:
            return False
        query = sa.text(f"SELECT :key IN ({LIVE_OWNER_LOCKS}) AS held")
        try:
            with translated("check the instance lock"):
                return bool(self._connection.execute(query, {"key": self._key}).scalar_one())
        except AuditError:
            return False

    def close(self) -> None:
        """End the dedicated session, which releases the lock; the instance is done."""
        self._closed = True
        connection, self._connection, self._key = self._connection, None, None
        if connection is not None:
            with translated("release the instance lock"):
                connection.close()
            log.info("instance.unlocked", instance=self.instance_id)

    def _drop(self) -> None:
        """Forget a dead session (its lock is gone with it); closing it may fail, which changes nothing."""
        connection, self._connection, self._key = self._connection, None, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except Exception as e:  # noqa: BLE001 (the session is already dead; nothing to release)
                log.debug("instance.drop_failed", error=type(e).__name__)

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
