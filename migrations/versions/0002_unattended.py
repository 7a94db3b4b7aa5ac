"""Canonical format 2 of the audit row (operator, reason, AI Core's error code); target identity and drift in state.

Rows already in ``audit_events`` keep format 1: ``ADD COLUMN ... DEFAULT 1`` is a catalogue
change in PostgreSQL 11+, so no row is rewritten and no append-only trigger fires. A format 1
row hashes exactly the 24 columns of 0001; a format 2 row hashes every column but the two
hashes (docs/audit.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("format", sa.SmallInteger, nullable=False, server_default="1"))
    op.add_column("audit_events", sa.Column("operator", sa.Text))
    op.add_column("audit_events", sa.Column("reason", sa.Text))
    op.add_column("audit_events", sa.Column("aicore_error_code", sa.Text))
    op.create_check_constraint(op.f("ck_audit_events_format_known"), "audit_events", "format IN (1, 2)")
    op.create_index(
        op.f("ix_audit_events_operator_seq"),
        "audit_events",
        ["operator", "seq"],
        postgresql_where=sa.text("operator IS NOT NULL"),
    )
    op.add_column("rotation_state", sa.Column("target_identity", sa.Text))
    op.add_column("rotation_state", sa.Column("confirmed_at", TZ))


def downgrade() -> None:
    op.drop_column("rotation_state", "confirmed_at")
    op.drop_column("rotation_state", "target_identity")
    op.drop_index(op.f("ix_audit_events_operator_seq"), table_name="audit_events")
    op.drop_constraint(op.f("ck_audit_events_format_known"), "audit_events", type_="check")
    # Dropping columns of an append-only table is DDL, not UPDATE: the triggers do not fire.
    op.drop_column("audit_events", "aicore_error_code")
    op.drop_column("audit_events", "reason")
    op.drop_column("audit_events", "operator")
    op.drop_column("audit_events", "format")
