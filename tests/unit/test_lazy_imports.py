"""`rotator run` without anchors signed by Ed25519 or notifications loads neither cryptography nor apprise.

Nor, ever, httpx's command-line tool (``httpx._main``) and click, which it imports (apprise
installs click; the tool's other imports, rich and pygments, are dev tools here, and structlog
imports them where they are installed, so they are not checked).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What `rotator run` imports and builds before its first sweep, short of reaching a server.
PROGRAM = textwrap.dedent(
    """
    import json, sys
    from service.config import Settings
    from service.app import App
    from service.worker import Worker
    import service.engine, service.observe, service.vault, service.aicore.client, service.registry
    import service.audit.state, service.audit.store, service.audit.controls, service.audit.instance
    import service.audit.migrate, service.audit.changes, service.http, service.metrics
    settings = Settings(**json.loads(sys.argv[1]))
    app = App(settings)
    worker = Worker(app)
    worker._schedule()
    listener = app._notifying(service.observe.Observer(metrics=app.metrics, clock=app.clock, anchorer=app.anchorer))
    unused = ("cryptography", "apprise", "click")
    print(json.dumps({name: sys.modules.get(name) is not None for name in (*unused, "httpx._main")}))
    """
)


def loaded(settings: dict[str, object], tmp_path: Path) -> dict[str, bool]:
    """Which of the lazily imported libraries the program above left in sys.modules."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(settings)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ROTATOR_AUDIT_KEY": "k" * 32},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, bool] = json.loads(done.stdout.splitlines()[-1])
    return result


BASE = {
    "targets": {"eu": {"service_key": {"env": "EU_KEY"}}},
    "secrets": [{"name": "acme", "targets": ["eu"], "source": {"path": "registries/acme"}}],
    "defaults": {"schedule": {"every": "6h"}},
    "vault": {"address": "http://127.0.0.1:9", "auth": {"method": "token", "token": {"env": "VAULT_TOKEN"}}},
    "database": {"url": "postgresql+psycopg://rotator@127.0.0.1:9/rotator"},
}


def test_a_worker_without_signing_or_notifications_loads_neither(tmp_path: Path) -> None:
    """Anchors to the log, unsigned, and no [notify] URLs: cryptography and apprise stay unimported."""
    assert loaded(BASE, tmp_path) == dict.fromkeys(("cryptography", "apprise", "click", "httpx._main"), False)


def test_an_ed25519_signing_key_loads_cryptography(tmp_path: Path) -> None:
    """With an Ed25519 signing key configured the same program does load cryptography (the test can fail)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = tmp_path / "anchor.pem"
    key.write_bytes(pem)
    signing = {"audit": {"anchors": {"signing": {"kind": "ed25519", "key": {"file": str(key)}}}}}
    assert loaded(BASE | signing, tmp_path)["cryptography"] is True
