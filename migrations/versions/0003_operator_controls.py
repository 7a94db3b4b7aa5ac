"""Operator controls: pauses (a pair, a secret, a target or everything) and pins (a pair held at a KV v2 version).

Both tables are mutable state, beside ``rotation_state``: every change to them is also
appended to the audit trail (``paused``, ``resumed``, ``pinned``, ``unpinned``) in the same
transaction. ``'*'`` in a pause's ``target`` or ``secret`` means every one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pauses",
        sa.Column("target", sa.Text),
        sa.Column("secret", sa.Text),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("target", "secret", name="pk_pauses"),
    )
    op.create_table(
        "pins",
        sa.Column("target", sa.Text),
        sa.Column("secret", sa.Text),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("target", "secret", name="pk_pins"),
        sa.CheckConstraint("version > 0", name=op.f("ck_pins_version_positive")),
    )


def downgrade() -> None:
    op.drop_table("pins")
    op.drop_table("pauses")
