"""The distribution launcher explains what to install when its tools are missing (no server started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.sandbox import docker_registry
from service.sandbox.docker_registry import RegistryUnavailable, registry_config

PASSWORD = "Sentinel-Launcher-Pa55"


def test_missing_binary_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the binary, the launcher's error names the apt packages to install."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(docker_registry.BINARY_ENV, raising=False)
    with pytest.raises(RegistryUnavailable, match="apt-get install docker-registry apache2-utils"):
        docker_registry.registry_binary()
    with pytest.raises(RegistryUnavailable, match="htpasswd"):
        docker_registry.htpasswd_line("alice", PASSWORD)


def test_binary_env_must_name_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """ROTATOR_REGISTRY_BINARY pointing nowhere is refused with the variable's name."""
    monkeypatch.setenv(docker_registry.BINARY_ENV, os.fspath(tmp_path / "registry"))
    with pytest.raises(RegistryUnavailable, match=docker_registry.BINARY_ENV):
        docker_registry.registry_binary()


def test_config_listens_on_loopback_with_htpasswd(tmp_path: Path) -> None:
    """The generated configuration serves 127.0.0.1 only, stores under the temp dir and uses htpasswd."""
    config = registry_config(root=tmp_path, port=5123, htpasswd=tmp_path / "htpasswd", realm="r")
    http = config["http"]
    assert isinstance(http, dict)
    assert http["addr"] == "127.0.0.1:5123"
    assert config["auth"] == {"htpasswd": {"realm": "r", "path": str(tmp_path / "htpasswd")}}
    assert str(tmp_path) in str(config["storage"])
