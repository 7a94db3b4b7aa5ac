"""Nothing of a PATCH outlives it: no rendered value, request or response stays referenced by the client."""

from __future__ import annotations

import gc

import httpx
import pytest

from service.model import DockerConfigJson
from tests.integration.aicore.conftest import Rig, config_json

SENTINEL = "SENTINEL-patch-body-5b7e"


def live(kind: type) -> list[object]:
    gc.collect()
    return [obj for obj in gc.get_objects() if isinstance(obj, kind)]


# gc.collect() here also finalises connections that earlier tests (the fault suite stops
# PostgreSQL under a pool) dropped: their finaliser's warning is not this test's concern.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function BaseConnection.__del__:pytest.PytestUnraisableExceptionWarning"
)
def test_the_rendered_value_and_the_request_are_dropped_after_the_patch(rig: Rig) -> None:
    """After edit() returns, no DockerConfigJson, httpx.Request or httpx.Response of it is still alive."""
    client = rig.client()
    rig.emulator.inspect.seed("tenant-a", "acme-registry", '{"auths":{}}')
    before = len(live(DockerConfigJson))
    receipt = client.edit("acme-registry", config_json(SENTINEL))
    assert receipt.status == 202
    assert SENTINEL in (rig.emulator.inspect.stored("tenant-a", "acme-registry") or ""), "the PATCH was sent"
    assert len(live(DockerConfigJson)) == before
    # Only this test's requests: earlier tests in the same process may still hold theirs.
    mine = rig.emulator.url
    requests = [r for r in live(httpx.Request) if r.method == "PATCH" and str(r.url).startswith(mine)]
    assert requests == []
    responses = [r for r in live(httpx.Response) if _patch_to(r, mine)]
    assert responses == []


def _patch_to(response: httpx.Response, base: str) -> bool:
    try:
        request = response.request
    except RuntimeError:  # a response built without a request (other tests' fakes)
        return False
    return request.method == "PATCH" and str(request.url).startswith(base)
