"""The worker's HTTP port with http.token: /status and /metrics need the bearer token, the probes stay open."""

from __future__ import annotations

import secrets

import httpx

from tests.e2e.processes import is_rotation
from tests.e2e.scene import Scene


def test_the_worker_guards_status_and_metrics_with_the_token(scene: Scene) -> None:
    """No token or a wrong one: 401 with WWW-Authenticate; the token: 200; /livez and /readyz: 200 without one."""
    token = secrets.token_hex(16)
    token_file = scene.workdir / "http-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    scene.every = "1h"
    scene.set("http", token={"file": str(token_file)})
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    worker = scene.start_worker()
    base = worker.http_url()
    worker.wait_for(is_rotation(secret="acme-registry", outcome="applied"), what="acme-registry applied")

    with httpx.Client(base_url=base, timeout=5) as client:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 200
        for route in ("/status", "/metrics"):
            refused = client.get(route)
            assert refused.status_code == 401, route
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "acme-registry" not in refused.text
            assert client.get(route, headers={"Authorization": f"Bearer {token[:-1]}x"}).status_code == 401
            allowed = client.get(route, headers={"Authorization": f"Bearer {token}"})
            assert allowed.status_code == 200, route
            assert "acme-registry" in allowed.text
    assert worker.stop() == 0
    assert token not in worker.text(), "the token never reaches a log line"


def test_an_unreadable_token_stops_the_start_with_exit_2(scene: Scene) -> None:
    """`rotator run` with an http.token file that does not exist: one line naming http.token, exit 2."""
    scene.set("http", token={"file": str(scene.workdir / "no-such-token")})
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.put("registries/acme")
    result = scene.rotator("run", expect=2)
    assert len(result.plain_stderr) == 1, result.plain_stderr
    assert result.plain_stderr[0].startswith("error: configuration: http.token: file ")
