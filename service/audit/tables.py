"""The tables, as SQLAlchemy Core metadata. Migrations in ``migrations/`` create them.

``audit_events`` is append-only (triggers refuse UPDATE, DELETE and TRUNCATE);
``audit_chain_head`` is its one-row lock and in-database anchor; ``rotation_state`` and
``leases`` hold everything mutable. A test compares this metadata with the migrated schema.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

HEX64 = "^[0-9a-f]{64}$"

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
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
    # Added by migration 0002 (canonical format 2, docs/audit.md): rows of format 1 hash without them.
    sa.Column("format", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("operator", sa.Text),  # the person behind a manual action, beside the worker's actor
    sa.Column("reason", sa.Text),  # why they did it, as they said it
    sa.Column("aicore_error_code", sa.Text),  # AI Core's own `code` from its error body, beside ours
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("row_hash", sa.Text, nullable=False),
    sa.CheckConstraint("seq > 0", name="seq_positive"),
    sa.CheckConstraint("intent_seq IS NULL OR intent_seq < seq", name="intent_before_outcome"),
    sa.CheckConstraint(f"prev_hash ~ '{HEX64}'", name="prev_hash_hex"),
    sa.CheckConstraint(f"row_hash ~ '{HEX64}'", name="row_hash_hex"),
    sa.CheckConstraint("format IN (1, 2)", name="format_known"),
    # Newest-first listings by each filter: a backward scan of (filter, seq) stops at LIMIT.
    sa.Index(None, "secret", "seq"),
    sa.Index(None, "target", "seq"),
    sa.Index(None, "event", "seq"),
    sa.Index(None, "actor", "seq"),
    sa.Index(None, "run_id", "seq"),
    sa.Index(None, "recorded_at"),
    sa.Index(None, "intent_seq", postgresql_where=sa.text("intent_seq IS NOT NULL")),
    sa.Index(None, "operator", "seq", postgresql_where=sa.text("operator IS NOT NULL")),
)

# The hash covers every column but the two hashes, in this (documented) set: canonical format 2.
HASHED_COLUMNS: tuple[str, ...] = tuple(c.name for c in audit_events.columns if c.name not in ("prev_hash", "row_hash"))
# Rows of format 1 (written before migration 0002) hash exactly the 24 columns of 0001.
FORMAT_2_COLUMNS = ("format", "operator", "reason", "aicore_error_code")
HASHED_COLUMNS_V1: tuple[str, ...] = tuple(c for c in HASHED_COLUMNS if c not in FORMAT_2_COLUMNS)
CURRENT_FORMAT = 2

audit_chain_head = sa.Table(
    "audit_chain_head",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("row_hash", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
    sa.CheckConstraint(f"row_hash ~ '{HEX64}'", name="row_hash_hex"),
)

rotation_state = sa.Table(
    "rotation_state",
    metadata,
    sa.Column("target", sa.Text, primary_key=True),
    sa.Column("secret", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text),
    sa.Column("source_version", sa.BigInteger),
    sa.Column("last_outcome", sa.Text),
    sa.Column("last_error_code", sa.Text),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
    sa.Column("last_checked_at", sa.DateTime(timezone=True)),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_run_at", sa.DateTime(timezone=True)),
    sa.Column("credential_expires_at", sa.DateTime(timezone=True)),
    sa.Column("verification", sa.Text),
    sa.Column("verified_at", sa.DateTime(timezone=True)),
    # Added by migration 0002: whom the fingerprint was applied to (API host + client id), and
    # when the secret was last seen to exist in AI Core (drift check).
    sa.Column("target_identity", sa.Text),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("target", sa.Text, primary_key=True),
    sa.Column("secret", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("owner_lock", sa.BigInteger, nullable=False),
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),  # NULL: released
    sa.Column("acquired_at", sa.DateTime(timezone=True)),
)

# Added by migration 0003: operator controls (`rotator pause` / `rollback`). '*' in a pause means
# every target or every secret ('*', '*' is the global kill switch); a pin holds one pair at a KV v2 version.
pauses = sa.Table(
    "pauses",
    metadata,
    sa.Column("target", sa.Text, primary_key=True),
    sa.Column("secret", sa.Text, primary_key=True),
    sa.Column("operator", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

pins = sa.Table(
    "pins",
    metadata,
    sa.Column("target", sa.Text, primary_key=True),
    sa.Column("secret", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("operator", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("version > 0", name="version_positive"),
)
