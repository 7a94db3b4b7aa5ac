"""``PostgresControls``: pauses and pins in PostgreSQL (``service.ports.OperatorControls``).

Every replica reads the same rows, so a pause or a pin is obeyed at once everywhere. Each
change is appended to the audit trail (``paused``, ``resumed``, ``pinned``, ``unpinned``) in
the same transaction as the row it changes: there is no pause without its audit record.
Asking again for what is already so (pausing a paused scope, unpinning an unpinned pair)
changes nothing and writes no audit row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from service.audit.db import translated, where
from service.audit.store import MESSAGE_MAX, AuditStore, sanitise
from service.audit.tables import pauses, pins
from service.controls import Holds, Pause, Pin, Scope
from service.logs import redact_text
from service.model import AuditEvent, AuditRecord, RotationKey

# Pauses are few (an operator makes each by hand): all of them, plus the pins of the keys asked about.
_EVERY_PAUSE_AND_PIN = """
SELECT 'pause' AS kind, p.target, p.secret, NULL::bigint AS version, p.operator, p.reason, p.created_at
FROM pauses AS p
UNION ALL
SELECT 'pin', n.target, n.secret, n.version, n.operator, n.reason, n.created_at
FROM pins AS n
"""
_HOLDS = sa.text(
    _EVERY_PAUSE_AND_PIN
    + "JOIN unnest(CAST(:targets AS text[]), CAST(:secrets AS text[])) AS k(target, secret) USING (target, secret)"
)
# Pins are few too: for many keys (a reconcile pass asks about every pair every 15 s) every pin is read
# and the keys are matched here; sending 5,000 keys as arrays cost 11 ms of CPU, this about 1 ms.
_ALL_HOLDS = sa.text(_EVERY_PAUSE_AND_PIN)
MANY_KEYS = 100


def _pause(row: Any) -> Pause:
    return Pause(
        scope=Scope(target=row.target, secret=row.secret),
        operator=row.operator,
        reason=row.reason,
        created_at=row.created_at,
    )


def _pin(row: Any) -> Pin:
    return Pin(
        key=RotationKey(row.target, row.secret),
        version=row.version,
        operator=row.operator,
        reason=row.reason,
        created_at=row.created_at,
    )


class PostgresControls:
    """Reads and changes pauses and pins; each change is audited in its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- reading ------------------------------------------------------------------

    def holds(self, keys: Sequence[RotationKey]) -> Holds:
        """Every pause, and the pins of ``keys``: one statement, however many keys a sweep holds."""
        many = len(keys) > MANY_KEYS
        with translated(f"read pauses and pins at {where(self._engine)}"), self._engine.connect() as conn:
            if many:
                rows = conn.execute(_ALL_HOLDS).all()
            else:
                params = {"targets": [key.target for key in keys], "secrets": [key.secret for key in keys]}
                rows = conn.execute(_HOLDS, params).all()
        pins = {pin.key: pin for pin in (_pin(row) for row in rows if row.kind == "pin")}
        if many:
            wanted = set(keys)
            pins = {key: pin for key, pin in pins.items() if key in wanted}
        return Holds(pauses=tuple(_pause(row) for row in rows if row.kind == "pause"), pins=pins)

    def everything(self) -> Holds:
        """Every pause and every pin (``rotator status``)."""
        with translated(f"read pauses and pins at {where(self._engine)}"), self._engine.connect() as conn:
            paused = conn.execute(sa.select(pauses)).all()
            pinned = conn.execute(sa.select(pins)).all()
        return Holds(pauses=tuple(map(_pause, paused)), pins={pin.key: pin for pin in map(_pin, pinned)})

    # --- changing -----------------------------------------------------------------

    def pause(self, pause: Pause, *, event: AuditEvent) -> Pause | None:
        """Pause ``pause.scope`` and audit it; the pause already in force (nothing written), if any."""
        scope = pause.scope
        insert = (
            pg_insert(pauses)
            .values(target=scope.target, secret=scope.secret, operator=pause.operator, reason=pause.reason)
            .on_conflict_do_nothing(index_elements=["target", "secret"])
            .returning(pauses.c.target)
        )
        with translated(f"pause {scope} at {where(self._engine)}"), self._engine.begin() as conn:
            if conn.execute(insert).first() is None:
                row = conn.execute(sa.select(pauses).where(*_scope_is(scope))).one()
                return _pause(row)
            _audit(conn, event)
        return None

    def resume(self, scope: Scope, *, event: AuditEvent) -> Pause | None:
        """Lift the pause of exactly ``scope`` and audit it; the pause lifted, or None when there was none."""
        delete = sa.delete(pauses).where(*_scope_is(scope)).returning(*pauses.c)
        with translated(f"resume {scope} at {where(self._engine)}"), self._engine.begin() as conn:
            row = conn.execute(delete).first()
            if row is None:
                return None
            _audit(conn, event)
        return _pause(row)

    def pin(self, pin: Pin, *, event: AuditEvent) -> None:
        """Hold ``pin.key`` at ``pin.version`` (replacing an earlier pin) and audit it."""
        values = {
            "target": pin.key.target,
            "secret": pin.key.secret,
            "version": pin.version,
            "operator": pin.operator,
            "reason": pin.reason,
        }
        insert = pg_insert(pins).values(**values)
        upsert = insert.on_conflict_do_update(
            index_elements=["target", "secret"],
            set_={
                "version": insert.excluded.version,
                "operator": insert.excluded.operator,
                "reason": insert.excluded.reason,
                "created_at": sa.func.now(),
            },
        )
        with translated(f"pin {pin.key} at {where(self._engine)}"), self._engine.begin() as conn:
            conn.execute(upsert)
            _audit(conn, event)

    def unpin(self, key: RotationKey, *, event: AuditEvent) -> Pin | None:
        """Remove the pin of ``key`` and audit it; the pin removed, or None when there was none."""
        delete = sa.delete(pins).where(pins.c.target == key.target, pins.c.secret == key.secret).returning(*pins.c)
        with translated(f"unpin {key} at {where(self._engine)}"), self._engine.begin() as conn:
            row = conn.execute(delete).first()
            if row is None:
                return None
            _audit(conn, event)
        return _pin(row)


def _scope_is(scope: Scope) -> list[sa.ColumnElement[bool]]:
    return [pauses.c.target == scope.target, pauses.c.secret == scope.secret]


def _audit(conn: Connection, event: AuditEvent) -> list[AuditRecord]:
    """Append ``event`` inside the transaction that changes the control (the operator's reason masked too)."""
    masked = replace(event, reason=redact_text(event.reason)[:MESSAGE_MAX]) if event.reason else event
    return AuditStore._append(conn, [sanitise(masked)])  # same package: one transaction with the control's row
