"""Extra OpenBao dev servers for failures the shared one must not suffer: TLS (``-dev-tls``) and sealing."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType

from service.sandbox.openbao import bao_binary
from service.sandbox.processes import free_port, stop_process, wait_until


class OpenBaoTlsDevServer:
    """``bao server -dev -dev-tls``: OpenBao generates a CA and a certificate for 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root_token = "root-" + secrets.token_hex(12)
        self.base_dir = Path(tempfile.mkdtemp(prefix="rotator-bao-tls-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.base_dir / "certs" / "vault-ca.pem"

    def _healthy(self) -> bool:
        if not self.ca_cert.exists():
            return False
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=1, context=context) as response:  # noqa: S310
            return not json.load(response).get("sealed")

    def __enter__(self) -> OpenBaoTlsDevServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.base_dir)
        command = [
            bao_binary(),
            "server",
            "-dev",
            "-dev-tls",
            f"-dev-tls-cert-dir={self.base_dir / 'certs'}",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            "-dev-no-store-token",
        ]
        (self.base_dir / "certs").mkdir()
        log = self.base_dir / "bao.log"
        with log.open("ab") as out:
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        wait_until(self._healthy, timeout=30, what="OpenBao TLS dev server", process=self._process, log=log)
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        if self._process is not None:
            stop_process(self._process)
        shutil.rmtree(self.base_dir, ignore_errors=True)
