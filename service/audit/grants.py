"""Least-privilege grants for the application and for security readers (``rotator db grants``).

The application may append to the audit trail and read it back (open intents at start),
but never UPDATE, DELETE or TRUNCATE it; it moves the chain head and writes state and
leases. Readers may only SELECT. Run the SQL as the role that owns the tables (the one
that ran ``rotator db upgrade``), which must be neither of these roles: an owner can
switch triggers off.
"""

from __future__ import annotations

import re

ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TABLES = ("audit_events", "audit_chain_head", "rotation_state", "leases", "pauses", "pins", "alembic_version")
APP_PRIVILEGES = (
    ("SELECT, INSERT", "audit_events"),
    ("SELECT, UPDATE", "audit_chain_head"),
    ("SELECT, INSERT, UPDATE", "rotation_state"),
    ("SELECT, INSERT, UPDATE", "leases"),
    ("SELECT, INSERT, DELETE", "pauses"),  # operator controls: `pause` inserts, `resume` deletes
    ("SELECT, INSERT, UPDATE, DELETE", "pins"),  # `rollback` upserts, `unpin` deletes
    ("SELECT", "alembic_version"),
)


def role_problem(role: str) -> str | None:
    """Why ``role`` is not accepted as a role name, or None."""
    if ROLE_RE.match(role):
        return None
    return f"role name {role!r}: use lowercase letters, digits and '_' (at most 63, not starting with a digit)"


def grants_sql(*, app_role: str, reader_role: str) -> str:
    """The SQL script; ``ValueError`` for an unusable or repeated role name."""
    for role in (app_role, reader_role):
        problem = role_problem(role)
        if problem:
            raise ValueError(problem)
    if app_role == reader_role:
        raise ValueError("the application and reader roles must differ")
    tables = ", ".join(TABLES)
    lines = [
        "-- rotator: least privilege. Run as the owner of the tables, after `rotator db upgrade`.",
        f'-- The roles must exist, e.g.: CREATE ROLE "{app_role}" LOGIN; CREATE ROLE "{reader_role}" LOGIN;',
        "BEGIN;",
        f'REVOKE ALL ON {tables} FROM PUBLIC, "{app_role}", "{reader_role}";',
        "-- The application appends to the trail and reads it back; it can never change or remove a row.",
        *(f'GRANT {privileges} ON {table} TO "{app_role}";' for privileges, table in APP_PRIVILEGES),
        "-- Security readers: SELECT only.",
        f'GRANT SELECT ON {tables} TO "{reader_role}";',
        "COMMIT;",
    ]
    return "\n".join(lines) + "\n"
