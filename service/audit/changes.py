"""The rotation states changed since a moment of the database's clock: what the idle worker's health pass reads.

Every write of a state (``PostgresStateStore.save``'s upsert) sets ``updated_at`` to the
database's ``clock_timestamp()``, so "changed since" is one comparison with a moment the
database itself reported, whichever replica wrote the row. A row's ``updated_at`` is taken
before its transaction commits, so a caller asks again from a little before the newest
moment it saw (see ``service.worker``): a commit that lands late is still read.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit.db import translated, where
from service.audit.state import _STATE_FIELDS, _state_from_row  # one definition of a state's row
from service.audit.tables import rotation_state
from service.model import RotationKey, RotationState

# A state's columns in _STATE_FIELDS order (as state.py reads them), then updated_at.
_CHANGED = sa.select(
    rotation_state.c.target,
    rotation_state.c.secret,
    *(rotation_state.c[name] for name in _STATE_FIELDS),
    rotation_state.c.updated_at,
)


class StateChanges:
    """Reads states by when they were last written; read-only (no lease, no instance lock)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def since(self, moment: datetime | None) -> tuple[dict[RotationKey, RotationState], datetime | None]:
        """The states written after ``moment`` (every state when None), and the newest ``updated_at`` among them."""
        query = _CHANGED if moment is None else _CHANGED.where(rotation_state.c.updated_at > moment)
        with translated(f"load changed rotation states at {where(self._engine)}"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        states = {state.key: state for state in (_state_from_row(row[:-1]) for row in rows)}
        newest = max((row[-1] for row in rows), default=None)
        return states, newest
