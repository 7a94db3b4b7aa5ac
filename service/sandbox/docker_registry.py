"""CNCF distribution (Debian's ``docker-registry``) with htpasswd auth, on a loopback port.

Filesystem storage in a temporary directory, plain HTTP on 127.0.0.1 (distribution
accepts htpasswd auth without TLS; it only warns), bcrypt password hashes made by
``htpasswd -B`` from apache2-utils, because distribution reads no other hash and the
Python standard library has no bcrypt. The htpasswd file is read once at start-up, so
users are added before ``start()``.

On Debian or Ubuntu: ``apt-get install docker-registry apache2-utils``. Elsewhere, point
``ROTATOR_REGISTRY_BINARY`` at a distribution ``registry`` binary.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from service.sandbox.processes import free_port, stop_process, wait_until

BINARY_ENV = "ROTATOR_REGISTRY_BINARY"
INSTALL_HINT = (
    "install CNCF distribution and htpasswd: `apt-get install docker-registry apache2-utils` "
    f"(Debian / Ubuntu), or set {BINARY_ENV} to a distribution `registry` binary"
)


class RegistryUnavailable(RuntimeError):
    """The registry binary or the htpasswd tool is not installed."""


def registry_binary() -> str:
    """The distribution binary: ``$ROTATOR_REGISTRY_BINARY``, ``docker-registry`` (Debian) or ``registry``."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        if not Path(explicit).is_file():
            raise RegistryUnavailable(f"{BINARY_ENV}={explicit} is not a file; {INSTALL_HINT}")
        return explicit
    found = shutil.which("docker-registry") or shutil.which("registry")
    if found is None:
        raise RegistryUnavailable(f"no docker-registry binary on PATH; {INSTALL_HINT}")
    return found


def htpasswd_line(username: str, password: str) -> str:
    """``username:$2y$...``: a bcrypt entry from ``htpasswd -B``, the password passed on stdin."""
    tool = shutil.which("htpasswd")
    if tool is None:
        raise RegistryUnavailable(f"no htpasswd on PATH; {INSTALL_HINT}")
    result = subprocess.run(
        [tool, "-n", "-i", "-B", username], input=password.encode(), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"htpasswd failed for user {username!r} (exit code {result.returncode})")
    return result.stdout.decode().strip()


def registry_config(*, root: Path, port: int, htpasswd: Path, realm: str) -> dict[str, object]:
    """The registry's configuration (written as JSON, which is YAML too)."""
    return {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        "auth": {"htpasswd": {"realm": realm, "path": str(htpasswd)}},
    }


class DockerRegistry:
    """``with DockerRegistry(users={"alice": "pw"}) as registry: registry.url``."""

    def __init__(self, *, users: dict[str, str] | None = None, realm: str = "rotator-test") -> None:
        self.realm = realm
        self.port = free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="rotator-registry-"))
        self._users = dict(users or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "registry.log"

    def add_user(self, username: str, password: str) -> None:
        """Add a user; only before ``start()``: distribution reads its htpasswd file once."""
        if self._process is not None:
            raise RuntimeError("distribution reads htpasswd at start-up: add users before start()")
        self._users[username] = password

    def start(self, *, timeout: float = 30.0) -> str:
        binary = registry_binary()
        htpasswd = self.base_dir / "htpasswd"
        htpasswd.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in self._users.items()))
        htpasswd.chmod(0o600)
        config = self.base_dir / "config.yml"
        settings = registry_config(root=self.base_dir, port=self.port, htpasswd=htpasswd, realm=self.realm)
        config.write_text(json.dumps(settings, indent=2))
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
                start_new_session=True,
            )
        wait_until(self._answers, timeout=timeout, what="docker-registry", process=self._process, log=self.log_path)
        return self.url

    def _answers(self) -> bool:
        """Ready when ``/v2/`` answers, with the 401 its auth demands."""
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):  # noqa: S310 (loopback)
                return True
        except urllib.error.HTTPError as e:
            e.close()
            return e.code == 401

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> DockerRegistry:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
