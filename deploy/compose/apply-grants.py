"""Apply `rotator db grants` to the compose stack's database; run by the one-shot `grants` service.

Connects as the owner of the tables (libpq's PGHOST, PGPORT, PGDATABASE, PGUSER,
PGPASSWORD), creates the application and reader roles if they are missing, sets the
application role's password, and runs the SQL that `rotator db grants` prints. The rotator
then connects as that role: it can append to the audit trail but never change or delete a
row, and it has no DDL rights. Safe to run again.

    APP_ROLE            the application role (default rotator_app)
    APP_ROLE_PASSWORD   its password; hashed here (SCRAM-SHA-256), never sent in clear
    READER_ROLE         the read-only role for security teams (default rotator_reader; no login)
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg
from psycopg import sql

from service.audit.db import cause


def main() -> int:
    app_role = os.environ.get("APP_ROLE", "rotator_app")
    reader_role = os.environ.get("READER_ROLE", "rotator_reader")
    password = os.environ.get("APP_ROLE_PASSWORD")
    if not password:
        sys.stderr.write("apply-grants: APP_ROLE_PASSWORD is not set\n")
        return 2
    grants = subprocess.run(
        [sys.executable, "-m", "service", "db", "grants", "--app-role", app_role, "--reader-role", reader_role],
        capture_output=True,
        text=True,
        check=False,
    )
    if grants.returncode != 0:
        sys.stderr.write(grants.stderr)
        return grants.returncode
    try:
        with psycopg.connect("", autocommit=True) as conn:
            ensure_role(conn, app_role, login=True)
            ensure_role(conn, reader_role, login=False)
            hashed = conn.pgconn.encrypt_password(password.encode(), app_role.encode(), b"scram-sha-256")
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(app_role), hashed.decode()))
            conn.execute(grants.stdout.encode())
    except psycopg.Error as e:
        reason = cause(e)[0] or f"{type(e).__name__} (SQLSTATE {e.sqlstate})"
        sys.stderr.write(f"apply-grants: {reason}\n")
        return 3
    sys.stdout.write(f"apply-grants: {app_role} may use the rotator's tables; {reader_role} may read them\n")
    return 0


def ensure_role(conn: psycopg.Connection[Any], role: str, *, login: bool) -> None:
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} " + ("LOGIN" if login else "NOLOGIN")).format(sql.Identifier(role)))


if __name__ == "__main__":
    sys.exit(main())
