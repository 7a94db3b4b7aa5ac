"""Audit trail (append-only, hash-chained), its chain head, rotation state and leases.

Revision ID: 0001
Revises:
Create Date: 2024-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HEX64 = "^[0-9a-f]{64}$"
GENESIS = "0" * 64
TZ = sa.DateTime(timezone=True)

# Statement-level triggers refuse even a zero-row UPDATE or DELETE. ENABLE ALWAYS makes them
# fire under session_replication_role = replica too; only ALTER TABLE ... DISABLE TRIGGER
# (owner or superuser, and visible DDL) turns them off, and the hash chain catches what follows.
APPEND_ONLY = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_append_only;
CREATE TRIGGER audit_chain_head_keep
    BEFORE DELETE OR TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_chain_head ENABLE ALWAYS TRIGGER audit_chain_head_keep;
CREATE FUNCTION audit_chain_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit_chain_head only moves forward: % -> % refused', OLD.seq, NEW.seq;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_chain_head_forward
    BEFORE UPDATE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward();
ALTER TABLE audit_chain_head ENABLE ALWAYS TRIGGER audit_chain_head_forward;
"""


def _audit_events() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("api_host", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("registries", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("source_mount", sa.Text),
        sa.Column("source_path", sa.Text),
        sa.Column("source_version", sa.BigInteger),
        sa.Column("vault_request_id", sa.Text),
        sa.Column("registry_username", sa.Text),
        sa.Column("fingerprint", sa.Text),
        sa.Column("previous_fingerprint", sa.Text),
        sa.Column("verification", sa.Text),
        sa.Column("http_status", sa.Integer),
        sa.Column("aicore_request_id", sa.Text),
        sa.Column("error_code", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("intent_seq", sa.BigInteger),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("row_hash", sa.Text, nullable=False),
        sa.CheckConstraint("seq > 0", name=op.f("ck_audit_events_seq_positive")),
        sa.CheckConstraint(
            "intent_seq IS NULL OR intent_seq < seq", name=op.f("ck_audit_events_intent_before_outcome")
        ),
        sa.CheckConstraint(f"prev_hash ~ '{HEX64}'", name=op.f("ck_audit_events_prev_hash_hex")),
        sa.CheckConstraint(f"row_hash ~ '{HEX64}'", name=op.f("ck_audit_events_row_hash_hex")),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
    )
    for column in ("secret", "target", "event", "actor", "run_id"):
        op.create_index(f"ix_audit_events_{column}_seq", "audit_events", [column, "seq"])
    op.create_index("ix_audit_events_recorded_at", "audit_events", ["recorded_at"])
    op.create_index(
        "ix_audit_events_intent_seq", "audit_events", ["intent_seq"], postgresql_where=sa.text("intent_seq IS NOT NULL")
    )


def _chain_head() -> None:
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.SmallInteger, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("row_hash", sa.Text, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.CheckConstraint(f"row_hash ~ '{HEX64}'", name=op.f("ck_audit_chain_head_row_hash_hex")),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_head"),
    )
    op.execute(sa.insert(head).values(id=1, seq=0, row_hash=GENESIS, updated_at=sa.func.now()))


def _state_and_leases() -> None:
    op.create_table(
        "rotation_state",
        sa.Column("target", sa.Text),
        sa.Column("secret", sa.Text),
        sa.Column("fingerprint", sa.Text),
        sa.Column("source_version", sa.BigInteger),
        sa.Column("last_outcome", sa.Text),
        sa.Column("last_error_code", sa.Text),
        sa.Column("last_attempt_at", TZ),
        sa.Column("last_success_at", TZ),
        sa.Column("last_checked_at", TZ),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_run_at", TZ),
        sa.Column("credential_expires_at", TZ),
        sa.Column("verification", sa.Text),
        sa.Column("verified_at", TZ),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("target", "secret", name="pk_rotation_state"),
    )
    op.create_table(
        "leases",
        sa.Column("target", sa.Text),
        sa.Column("secret", sa.Text),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("owner_lock", sa.BigInteger, nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", TZ),
        sa.Column("acquired_at", TZ),
        sa.PrimaryKeyConstraint("target", "secret", name="pk_leases"),
    )


def upgrade() -> None:
    _audit_events()
    _chain_head()
    _state_and_leases()
    op.execute(APPEND_ONLY)


def downgrade() -> None:
    for table in ("leases", "rotation_state", "audit_chain_head", "audit_events"):
        op.drop_table(table)
    op.execute("DROP FUNCTION audit_chain_head_forward()")
    op.execute("DROP FUNCTION audit_refuse_change()")
