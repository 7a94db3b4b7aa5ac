"""``PostgresStateStore``: rotation state per (target, secret) and the leases that make each rotation happen once.

A lease is free when it was released (``expires_at`` NULL), it expired (database clock),
or its owner's ``InstanceLock`` is gone from ``pg_locks`` (the process died). ``claim``
runs in one transaction: lock the rows nobody else is touching (``FOR UPDATE SKIP LOCKED``;
a key claimed for the first time gets its row, then the lock), then, in a new statement that
therefore sees every commit made before the locks were taken, grant the free ones whose
state is due, returning each granted key's state with it (``claim_loaded``).
Each grant raises the row's fencing ``token`` by one; rows are never deleted, so a token
is never reused. ``save`` writes a state only while its grant is still the current one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from service.audit.db import translated, where
from service.audit.instance import LIVE_OWNER_LOCKS, InstanceLock
from service.audit.tables import rotation_state
from service.errors import AuditError
from service.logs import get_logger
from service.model import Fingerprint, LeaseGrant, RotationKey, RotationState, fingerprint_text

log = get_logger(__name__)
LOCK_CHECK_AGE_S = 1.0  # claims ask pg_locks whether the instance lock is held at most this often

_ENSURE_ROWS = sa.text("""
INSERT INTO leases (target, secret, owner, owner_lock, token)
SELECT k.target, k.secret, '', 0, 0
FROM unnest(CAST(:targets AS text[]), CAST(:secrets AS text[])) AS k(target, secret)
ORDER BY k.target, k.secret
ON CONFLICT (target, secret) DO NOTHING
""")

_LOCK_ROWS = sa.text("""
SELECT l.target, l.secret
FROM leases AS l
JOIN unnest(CAST(:targets AS text[]), CAST(:secrets AS text[])) AS k(target, secret) USING (target, secret)
ORDER BY l.target, l.secret
FOR UPDATE OF l SKIP LOCKED
""")

_STATE_FIELDS = tuple(field.name for field in dataclasses.fields(RotationState) if field.name != "key")

# The grant, and the state of every granted key, in one statement: the UPDATE's RETURNING joined
# to rotation_state (a table the UPDATE does not change, so the join sees its committed rows).
_GRANT = sa.text(f"""
WITH granted AS (
  UPDATE leases AS l
  SET owner = :owner, owner_lock = :owner_lock, token = l.token + 1,
      acquired_at = clock_timestamp(), expires_at = clock_timestamp() + make_interval(secs => :ttl)
  FROM unnest(CAST(:targets AS text[]), CAST(:secrets AS text[])) AS k(target, secret)
  WHERE l.target = k.target AND l.secret = k.secret
    AND (l.expires_at IS NULL OR l.expires_at < clock_timestamp() OR l.owner_lock NOT IN ({LIVE_OWNER_LOCKS}))
    AND CAST(:owner_lock AS bigint) IN ({LIVE_OWNER_LOCKS})  -- fencing: nothing is granted to a lost instance lock
    AND NOT EXISTS (
      SELECT 1 FROM rotation_state AS s
      WHERE s.target = l.target AND s.secret = l.secret AND s.next_run_at > CAST(:due_by AS timestamptz))
  RETURNING l.target, l.secret, l.owner, l.token, l.expires_at
)
SELECT g.target, g.secret, g.owner, g.token, g.expires_at, s.target IS NOT NULL AS has_state,
       {", ".join(f"s.{name}" for name in _STATE_FIELDS)}
FROM granted AS g LEFT JOIN rotation_state AS s ON s.target = g.target AND s.secret = g.secret
""")  # noqa: S608 (LIVE_OWNER_LOCKS and the column names are constants of this package, not outside text)

_CURRENT_GRANTS = sa.text("""
SELECT l.target, l.secret
FROM leases AS l
JOIN unnest(CAST(:targets AS text[]), CAST(:secrets AS text[]), CAST(:tokens AS bigint[]), CAST(:owners AS text[]))
  AS g(target, secret, token, owner) USING (target, secret, token, owner)
ORDER BY l.target, l.secret
FOR UPDATE OF l
""")

_RELEASE = sa.text("""
UPDATE leases AS l SET expires_at = NULL
FROM unnest(CAST(:targets AS text[]), CAST(:secrets AS text[]), CAST(:tokens AS bigint[]), CAST(:owners AS text[]))
  AS g(target, secret, token, owner)
WHERE l.target = g.target AND l.secret = g.secret AND l.token = g.token AND l.owner = g.owner
""")


def _key_params(keys: Sequence[RotationKey]) -> dict[str, list[str]]:
    return {"targets": [key.target for key in keys], "secrets": [key.secret for key in keys]}


def _grant_params(grants: Sequence[LeaseGrant]) -> dict[str, list[Any]]:
    return {
        **_key_params([grant.key for grant in grants]),
        "tokens": [grant.token for grant in grants],
        "owners": [grant.owner for grant in grants],
    }


def _state_row(state: RotationState) -> dict[str, Any]:
    row: dict[str, Any] = {"target": state.key.target, "secret": state.key.secret} | {
        name: getattr(state, name) for name in _STATE_FIELDS
    }
    row["fingerprint"] = fingerprint_text(state.fingerprint)  # stored as its text
    return row


def _state_from_row(row: Any, *, at: int = 2) -> RotationState:
    """A row of ``_LOAD`` (target, secret, then ``_STATE_FIELDS`` in order from ``at``) as a state."""
    key, values = RotationKey(row[0], row[1]), dict(zip(_STATE_FIELDS, row[at:], strict=True))
    values["fingerprint"] = _stored_fingerprint(key, values["fingerprint"])  # stored as its text
    return RotationState(key=key, **values)


def _stored_fingerprint(key: RotationKey, text: str | None) -> Fingerprint | None:
    """The state's fingerprint; one that does not parse counts as unknown (None), so the pair is written again."""
    fingerprint = Fingerprint.read(text)
    if fingerprint is None and text is not None:
        log.warning("state.fingerprint_unreadable", target=key.target, secret=key.secret, then="written again")
    return fingerprint


def _granted_from_row(row: Any) -> tuple[LeaseGrant, RotationState | None]:
    """A row of ``_GRANT``: the grant, and the key's state when it has one."""
    key = RotationKey(row[0], row[1])
    grant = LeaseGrant(key=key, owner=row[2], token=row[3], expires_at=row[4])
    return grant, (_state_from_row(row, at=6) if row[5] else None)


# Only what a state holds (no updated_at), in _STATE_FIELDS order: rows are read by position.
_LOAD = sa.select(rotation_state.c.target, rotation_state.c.secret, *(rotation_state.c[name] for name in _STATE_FIELDS))


class PostgresStateStore:
    """``service.ports.StateStore`` in PostgreSQL; owner and owner lock come from ``instance``."""

    def __init__(self, engine: Engine, *, instance: InstanceLock) -> None:
        self._engine = engine
        self._instance = instance

    def load(self, keys: Sequence[RotationKey] | None = None) -> dict[RotationKey, RotationState]:
        """The stored state of ``keys`` (every key when None); keys without state are absent."""
        query = _LOAD
        if keys is not None:
            query = query.where(sa.tuple_(rotation_state.c.target, rotation_state.c.secret).in_(list(keys)))
        with translated(f"load rotation state at {where(self._engine)}"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {state.key: state for state in map(_state_from_row, rows)}

    def claim(
        self, keys: Sequence[RotationKey], *, owner: str, ttl: timedelta, due_by: datetime | None
    ) -> dict[RotationKey, LeaseGrant]:
        """Grant the free leases among ``keys`` to this instance; return only those granted."""
        return {key: grant for key, (grant, _) in self.claim_loaded(keys, owner=owner, ttl=ttl, due_by=due_by).items()}

    def claim_loaded(
        self, keys: Sequence[RotationKey], *, owner: str, ttl: timedelta, due_by: datetime | None
    ) -> dict[RotationKey, tuple[LeaseGrant, RotationState | None]]:
        """``claim``, each grant with its key's state (None without one), in one transaction."""
        if owner != self._instance.instance_id:
            raise AuditError(f"claim for {owner!r} on the state store of instance {self._instance.instance_id!r}")
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        owner_lock = self._instance.ensure(max_age=LOCK_CHECK_AGE_S)
        with translated(f"claim leases at {where(self._engine)}"), self._engine.begin() as conn:
            locked = [RotationKey(*row) for row in conn.execute(_LOCK_ROWS, _key_params(wanted))]
            if len(locked) < len(wanted):  # rows missing (first claim of a key) or locked by another replica
                rest = sorted(set(wanted) - set(locked))
                conn.execute(_ENSURE_ROWS, _key_params(rest))
                locked += [RotationKey(*row) for row in conn.execute(_LOCK_ROWS, _key_params(rest))]
            params = {"owner": owner, "ttl": ttl.total_seconds(), "due_by": due_by}
            rows = self._grant(conn, sorted(locked), owner_lock=owner_lock, **params) if locked else []
            if len(rows) < len(locked) and (fresh := self._instance.ensure()) != owner_lock:
                # the lock was lost since it was last seen held, and is taken back now: grant the rest with it
                rest = sorted(set(locked) - {RotationKey(row[0], row[1]) for row in rows})
                rows += self._grant(conn, rest, owner_lock=fresh, **params)
        granted = [_granted_from_row(row) for row in rows]
        log.debug("lease.claimed", wanted=len(wanted), granted=len(granted))
        return {grant.key: (grant, state) for grant, state in granted}

    @staticmethod
    def _grant(conn: Connection, keys: list[RotationKey], *, owner_lock: int, **params: Any) -> list[Any]:
        return list(conn.execute(_GRANT, {**params, "owner_lock": owner_lock, **_key_params(keys)}).all())

    def save(self, states: Sequence[RotationState], *, release: Sequence[LeaseGrant] = ()) -> list[RotationKey]:
        """Upsert ``states`` and release ``release`` in one transaction, fenced by each grant's token."""
        with translated(f"save rotation state at {where(self._engine)}"), self._engine.begin() as conn:
            current = {RotationKey(*row) for row in conn.execute(_CURRENT_GRANTS, _grant_params(release))}
            lost = {grant.key for grant in release} - current
            latest = {state.key: state for state in states if state.key not in lost}
            if latest:
                conn.execute(_UPSERT, _upsert_params([latest[key] for key in sorted(latest)]))
            conn.execute(_RELEASE, _grant_params([grant for grant in release if grant.key in current]))
        refused = [state.key for state in states if state.key in lost]
        if refused:
            log.warning("lease.lost", keys=[str(key) for key in refused])
        return refused

    def release(self, grants: Sequence[LeaseGrant]) -> None:
        """Release ``grants`` that are still current; others are left to their new holders."""
        with translated(f"release leases at {where(self._engine)}"), self._engine.begin() as conn:
            conn.execute(_RELEASE, _grant_params(grants))


def _upsert_statement() -> sa.TextClause:
    """One upsert of any number of states: their rows as one JSON array parameter, one round trip.

    One JSON text (``json.dumps``, in C) instead of a typed array per column: psycopg
    dumps array parameters element by element in Python, a third of a save's CPU.
    """
    columns = ("target", "secret", *_STATE_FIELDS)
    record = ", ".join(f"{name} {_SQL_TYPES[name]}" for name in columns)
    values = ", ".join(f"r.{name}" for name in columns)
    changes = ", ".join(f"{name} = EXCLUDED.{name}" for name in _STATE_FIELDS)
    return sa.text(
        f"INSERT INTO rotation_state ({', '.join(columns)}, updated_at)"  # noqa: S608 (the table's own columns)
        f" SELECT {values}, clock_timestamp() FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({record})"
        f" ON CONFLICT (target, secret) DO UPDATE SET {changes}, updated_at = clock_timestamp()"
    )


def _upsert_params(states: list[RotationState]) -> dict[str, str]:
    return {"rows": json.dumps([_state_row(state) for state in states], default=_json_value)}


def _json_value(value: object) -> str:
    """A state's value JSON has no type for: a timestamp (always aware) as ISO 8601, which PostgreSQL parses."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("a rotation state's timestamp must carry its time zone")
        return value.isoformat()
    raise TypeError(f"no JSON form for {type(value).__name__}")


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # the dialect class has no annotations
_SQL_TYPES = {column.name: column.type.compile(dialect=_DIALECT) for column in rotation_state.columns}
_UPSERT = _upsert_statement()
