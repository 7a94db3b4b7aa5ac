"""The rotation states changed since a moment of the database's clock: what the idle worker's health pass reads.

Every write of a state (``PostgresStateStore.save``'s upsert) sets ``updated_at`` to the
database's ``clock_timestamp()``, so "changed since" is one comparison with a moment of the
database's own clock, whichever replica wrote the row. Each read also returns the database's
time as it began; the caller asks next from a little before that moment (see
``service.worker``), because a row's ``updated_at`` is taken before its transaction commits:
a commit that landed just after the read began is still read the next time.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.audit.db import translated, where
from service.audit.state import _STATE_FIELDS, _state_from_row  # one definition of a state's row
from service.audit.tables import rotation_state
from service.model import RotationKey, RotationState

# A state's columns in _STATE_FIELDS order, as state.py reads them.
_CHANGED = sa.select(rotation_state.c.target, rotation_state.c.secret, *(rotation_state.c[n] for n in _STATE_FIELDS))
_NOW = sa.select(sa.func.clock_timestamp())  # before the read's own snapshot: nothing committed later is assumed seen


class StateChanges:
    """Reads states by when they were last written; read-only (no lease, no instance lock)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def since(self, moment: datetime | None) -> tuple[dict[RotationKey, RotationState], datetime]:
        """The states written after ``moment`` (every state when None), and the database's time before reading them."""
        query = _CHANGED if moment is None else _CHANGED.where(rotation_state.c.updated_at > moment)
        with translated(f"load changed rotation states at {where(self._engine)}"), self._engine.connect() as conn:
            began: datetime = conn.execute(_NOW).scalar_one()
            rows = conn.execute(query).all()
        return {state.key: state for state in map(_state_from_row, rows)}, began
