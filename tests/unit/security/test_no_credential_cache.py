"""No rendered .dockerconfigjson or read credential outlives the sweep that used it."""

from __future__ import annotations

import gc

from service.model import DockerConfigJson, Outcome, RegistryCredential
from tests.unit.test_sweep import World, secret


def live_credentials() -> set[int]:
    """Ids of every credential and rendering alive now (other tests' module constants included)."""
    gc.collect()
    return {id(obj) for obj in gc.get_objects() if isinstance(obj, DockerConfigJson | RegistryCredential)}


def test_a_sweep_keeps_no_credential_after_it_returns() -> None:
    """Two secrets on two targets are written; afterwards no credential or rendering is referenced anywhere."""
    world = World()
    world.source.put("registries/other", "robot", "another-password")
    try:
        before = live_credentials()
        report = world.sweep(secret(targets=("eu", "us")), secret("other-registry", path="registries/other"))
        assert [r.outcome for r in report.results] == [Outcome.APPLIED] * 3
        del report
        assert live_credentials() - before == set()
    finally:
        world.rotator.close()
