"""The HTTP port's bearer token: /status and /metrics need it when set; /livez and /readyz stay open."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.app import App
from service.cli import run_handler
from service.config import load_settings
from service.http import HealthServer, Probes

TOKEN = "sentinel-http-token-0123456789"


def probes() -> Probes:
    return Probes(
        live=lambda: True,
        ready=lambda: {"database": "ok"},
        metrics=lambda: (b"rotator_up 1\n", "text/plain; version=0.0.4"),
        status=lambda: [{"secret": "acme-registry"}],
    )


@pytest.fixture
def guarded() -> Iterator[httpx.Client]:
    server = HealthServer(listen="127.0.0.1:0", probes=probes(), token=TOKEN)
    server.start()
    with httpx.Client(base_url=server.address, timeout=5) as client:
        yield client
    server.stop()


@pytest.mark.parametrize("route", ["/status", "/metrics"])
def test_protected_routes_require_the_token(guarded: httpx.Client, route: str) -> None:
    """Without Authorization, /status and /metrics answer 401 with WWW-Authenticate: Bearer and no data."""
    response = guarded.get(route)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "acme-registry" not in response.text
    assert "rotator_up" not in response.text


@pytest.mark.parametrize("route", ["/status", "/metrics"])
def test_the_right_token_opens_them(guarded: httpx.Client, route: str) -> None:
    """With Authorization: Bearer <http.token> they answer 200 with their content."""
    response = guarded.get(route, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "acme-registry" in response.text or "rotator_up 1" in response.text


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"bearer {TOKEN}", TOKEN, f"Basic {TOKEN}", "Bearer"],
)
def test_a_wrong_token_is_refused(guarded: httpx.Client, header: str) -> None:
    """A longer, shorter, mis-schemed or empty token is a 401, never the content."""
    for route in ("/status", "/metrics"):
        response = guarded.get(route, headers={"Authorization": header})
        assert response.status_code == 401, (route, header)


def test_probes_stay_open_with_a_token(guarded: httpx.Client) -> None:
    """/livez and /readyz answer without any Authorization header, for the kubelet and compose health checks."""
    assert guarded.get("/livez").status_code == 200
    assert guarded.get("/readyz").json() == {"status": "ok", "checks": {"database": "ok"}}


def test_without_a_token_everything_is_open() -> None:
    """http.token unset: /status and /metrics answer as before."""
    server = HealthServer(listen="127.0.0.1:0", probes=probes())
    server.start()
    try:
        assert httpx.get(f"{server.address}/status", timeout=5).status_code == 200
        assert httpx.get(f"{server.address}/metrics", timeout=5).status_code == 200
    finally:
        server.stop()


def test_the_token_is_read_from_its_reference(tmp_path: Path) -> None:
    """App.http_token resolves http.token like every secret (here a file, trailing newline stripped)."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    path = tmp_path / "rotator.toml"
    path.write_text(f'[http]\ntoken = {{file = "{token_file}"}}\n')
    with App(load_settings(path, environ={})) as app:
        assert app.http_token == TOKEN


def test_an_unreadable_token_is_a_config_error_naming_http_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token reference that cannot be read exits 2 with one line naming http.token, no traceback."""
    path = tmp_path / "rotator.toml"
    path.write_text(f'[http]\ntoken = {{file = "{tmp_path / "missing"}"}}\n')
    settings = load_settings(path, environ={})

    def start(_: argparse.Namespace) -> int:
        with App(settings) as app:
            assert app.http_token is not None
        return 0

    assert run_handler(start, argparse.Namespace()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: configuration: http.token: file ")
    assert "Traceback" not in err[0]
