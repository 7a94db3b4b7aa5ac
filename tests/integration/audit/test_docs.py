"""docs/audit.md stays true: its recomputation script verifies a real trail, its grants are what we print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from service.audit.grants import grants_sql
from service.audit.store import AuditStore
from service.model import EventType
from tests.integration.audit.conftest import make_event

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit.md"


def _block(after: str, language: str) -> str:
    text = DOC.read_text()
    match = re.search(re.escape(after) + r"\s*```" + language + r"\n(.*?)```", text, re.DOTALL)
    assert match, f"no {language} block after {after!r} in {DOC}"
    return match.group(1)


def _run_script(tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "recompute.py"
    script.write_text(_block("<!-- example:recompute -->", "python"))
    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run([sys.executable, str(script), libpq], capture_output=True, text=True, timeout=60, check=False)


def test_documented_script_recomputes_a_real_chain(
    store: AuditStore, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """The ~17-line standalone script from the docs verifies the trail the store wrote, non-ASCII included."""
    store.append([make_event(message='Zugriff verweigert: ü, 日本, "quoted"\n'), make_event(registries=())])
    store.append([make_event(event=EventType.APPLIED, intent_seq=1, http_status=202, duration_ms=12)])
    head = store.head()
    done = _run_script(tmp_path, database_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"3 rows verified, head {head}"
    assert len(_block("<!-- example:recompute -->", "python").splitlines()) <= 18


def test_documented_script_catches_a_change(
    store: AuditStore, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """The documented script also fails on a changed row, so the spec is the one verify uses."""
    store.append([make_event(), make_event()])
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER ALL"))
        conn.execute(sa.text("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2"))
        conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
    done = _run_script(tmp_path, database_url)
    assert done.returncode == 1
    assert "chain broken at seq 2" in done.stderr


def test_documented_grants_are_what_the_command_prints() -> None:
    """The grants shown in the docs are the output of `rotator db grants` with default roles."""
    assert _block("prints:", "sql") == grants_sql(app_role="rotator_app", reader_role="rotator_reader")
