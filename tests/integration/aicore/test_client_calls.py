"""The AI Core client's calls against the emulator over real HTTP."""

from __future__ import annotations

import time

import pytest

from service.aicore.client import Quota, build_client
from service.aicore.servicekey import ServiceKey
from service.config import RetryConfig
from service.errors import AICoreAuthError, BadRequest, Unavailable
from service.model import WriteReceipt
from service.ports import SecretStore
from tests.integration.aicore.conftest import Rig, config_json, count


def test_client_is_a_secret_store(rig: Rig) -> None:
    """AICoreClient satisfies the SecretStore port: target and API host come from the key."""
    client: SecretStore = rig.client()
    assert client.target == "tenant-a"
    assert client.api_host == rig.emulator.url.removeprefix("http://")


def test_edit_replaces_the_whole_value(rig: Rig) -> None:
    """PATCH stores exactly the given .dockerconfigjson and answers 202 with a request id."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    receipt = rig.client().edit("my-registry", config_json("pw-2"))
    assert isinstance(receipt, WriteReceipt)
    assert receipt.status == 202
    assert receipt.request_id
    assert rig.emulator.inspect.stored("tenant-a", "my-registry") == config_json("pw-2").reveal()
    assert [w.method for w in rig.emulator.inspect.writes("tenant-a")] == ["PATCH"]


def test_create_adds_a_new_secret(rig: Rig) -> None:
    """POST creates the secret with the value (202)."""
    receipt = rig.client().create("new-registry", config_json())
    assert receipt.status == 202
    assert rig.emulator.inspect.stored("tenant-a", "new-registry") == config_json().reveal()


def test_create_of_an_existing_secret_edits_it(rig: Rig) -> None:
    """A 409 on create (someone created it meanwhile) ends in a PATCH with the same value."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    receipt = rig.client().create("my-registry", config_json("pw-3"))
    assert receipt.status == 202
    assert rig.emulator.inspect.stored("tenant-a", "my-registry") == config_json("pw-3").reveal()
    assert [w.method for w in rig.emulator.inspect.writes("tenant-a")] == ["PATCH"]


def test_create_retried_after_a_timeout_that_did_land(rig: Rig) -> None:
    """First POST times out but is applied; the retry gets 409 and PATCHes: the value is ours, no error."""
    rig.emulator.stall_next("tenant-a", seconds=0.4)

    def wait_for_the_stalled_post(seconds: float) -> None:
        deadline = time.monotonic() + 5
        while rig.emulator.inspect.stored("tenant-a", "new-registry") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        rig.sleep(seconds)

    client = rig.client(timeout=0.1, sleep=wait_for_the_stalled_post)
    receipt = client.create("new-registry", config_json("pw-4"))
    assert receipt.status == 202
    assert [w.method for w in rig.emulator.inspect.writes("tenant-a")] == ["POST", "PATCH"]
    assert rig.emulator.inspect.stored("tenant-a", "new-registry") == config_json("pw-4").reveal()


def test_get_tells_whether_a_secret_exists(rig: Rig) -> None:
    """get is True for an existing name and False for an unknown one."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    client = rig.client()
    assert client.get("my-registry") is True
    assert client.get("other-registry") is False


def test_list_names_follows_every_page(rig: Rig) -> None:
    """120 secrets on a large tenant come back in pages of 50 ($top/$skip): all of them, in order."""
    rig.emulator.add_tenant("large", quota=500)
    names = [f"secret-{index:03d}" for index in range(120)]
    for name in names:
        rig.emulator.inspect.seed("large", name, "{}")
    assert rig.client("large").list_names() == names
    assert rig.emulator.inspect.request_count("large", endpoint="secrets") == 3


def test_list_names_with_an_exact_multiple_of_the_page(rig: Rig) -> None:
    """20 secrets in pages of 10: the count stops the paging without an empty third page."""
    for index in range(20):
        rig.emulator.inspect.seed("tenant-a", f"secret-{index:02d}", "{}")
    assert len(rig.client(page_size=10).list_names()) == 20
    assert count(rig, endpoint="secrets") == 2


def test_list_names_of_an_empty_tenant(rig: Rig) -> None:
    """No secrets: an empty list after one request."""
    assert rig.client().list_names() == []
    assert count(rig, endpoint="secrets") == 1


def test_quota_reports_usage_and_limit(rig: Rig) -> None:
    """quota() reads usage.count and quota.maxCount."""
    rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
    assert rig.client().quota() == Quota(count=1, max_count=50)


@pytest.mark.parametrize("name", ["ab", "Bad-Name", "../admin", "x" * 64, "abc\n"])
def test_invalid_names_are_refused_before_any_request(rig: Rig, name: str) -> None:
    """A name AI Core would refuse (or one that would change the path) never reaches the network."""
    client = rig.client()
    with pytest.raises(BadRequest):
        client.edit(name, config_json())
    with pytest.raises(BadRequest):
        client.create(name, config_json())
    with pytest.raises(BadRequest):
        client.get(name)
    assert count(rig) == 0


def test_build_client_pools_connections_and_reuses_the_token(rig: Rig) -> None:
    """The factory's client keeps one keep-alive connection and one token across calls."""
    client = build_client(target="tenant-a", key=rig.key(), timeout=5.0, retry=RetryConfig(), max_connections=4)
    try:
        rig.emulator.inspect.seed("tenant-a", "my-registry", "{}")
        before = rig.emulator.inspect.connection_count()
        for index in range(10):
            assert client.edit("my-registry", config_json(f"pw-{index}")).status == 202
        assert client.get("my-registry")
        assert count(rig, endpoint="token") == 1
        assert rig.emulator.inspect.connection_count() - before == 1
    finally:
        client.close()


def test_check_reaches_xsuaa_and_the_api(rig: Rig) -> None:
    """check() fetches a token and reads the quota; it passes for a viewer identity too."""
    rig.emulator.set_editor("tenant-a", False)
    rig.client().check()
    assert count(rig, endpoint="token") == 1
    assert count(rig, endpoint="quota") == 1


def test_check_does_not_retry(rig: Rig) -> None:
    """A failing AI Core is reported at once: one request, no wait, the typed error."""
    rig.emulator.fail_next("tenant-a", status=503, count=5)
    with pytest.raises(Unavailable):
        rig.client().check()
    assert count(rig, endpoint="quota") == 1
    assert rig.sleeps == []


def test_check_reports_wrong_credentials(rig: Rig) -> None:
    """Wrong client credentials fail check() with AICoreAuthError."""
    key = rig.key()
    wrong = ServiceKey(client_id="someone-else", api_url=key.api_url, auth_url=key.auth_url, client_secret="x" * 12)
    with pytest.raises(AICoreAuthError):
        rig.client(key=wrong).check()
