"""The emulator's Docker registry secret API, checked against the spec with a plain HTTP client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.sandbox.aicore_emulator import AICoreEmulator
from tests.unit.aicore.conftest import PLAIN, FakeClock, api_client

SECRET = "SENTINEL-registry-password-7f3a"
VALUE = json.dumps({"auths": {"registry.example.com": {"username": "robot", "password": SECRET}}})
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def create(api: httpx.Client, name: str, value: str = VALUE, **extra: Any) -> httpx.Response:
    return api.post("/dockerRegistrySecrets", json={"name": name, "data": {".dockerconfigjson": value}, **extra})


def patch(
    api: httpx.Client, name: str, body: Any, content_type: str = "application/merge-patch+json"
) -> httpx.Response:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.patch(f"/dockerRegistrySecrets/{name}", content=payload, headers={"Content-Type": content_type})


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The spec's error shape: {"error": {"code", "message", "requestId", "target"}}; never the secret."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["requestId"] == response.headers["x-request-id"]
    assert error["target"] == response.request.url.path
    assert SECRET not in response.text
    return dict(error)


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "my-registry", "a.b-c", "a_bc", "x" * 63, "0123"])
def test_names_the_spec_allows_are_created(api: httpx.Client, name: str) -> None:
    """The spec's pattern and at most 63 characters: accepted."""
    assert create(api, name).status_code == 202


@pytest.mark.parametrize("name", ["a", "My-registry", "-abc", "abc-", "ab__cd", "abc_", "a_b", "x" * 64, "ab cd", ""])
def test_names_the_spec_refuses_are_400_on_create(api: httpx.Client, name: str) -> None:
    """Upper case, edge punctuation, double or trailing underscores, over 63 characters: 400."""
    assert_error(create(api, name), 400)


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_names_the_spec_refuses_are_400_in_the_path(api: httpx.Client, method: str) -> None:
    """The path parameter follows the same rule."""
    response = api.request(method, "/dockerRegistrySecrets/Bad_Name", json={"data": {".dockerconfigjson": "{}"}})
    assert_error(response, 400)


# --- bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data": "x"},
        {"data": {}},
        {"data": {".dockerconfigjson": VALUE, "extra": "x"}},
        {"data": {"config.json": VALUE}},
        {"data": {".dockerconfigjson": {"auths": {}}}},
        {"data": {".dockerconfigjson": 42}},
        {"data": {".dockerconfigjson": '{"auths": {"r": {"password": "' + SECRET + '"'}},
        [],
    ],
)
def test_patch_bodies_the_spec_refuses_are_400(api: httpx.Client, body: Any) -> None:
    """data must hold exactly .dockerconfigjson, a string that parses as JSON; the value is never echoed."""
    assert create(api, "my-registry").status_code == 202
    assert_error(patch(api, "my-registry", body), 400)


def test_body_that_is_not_json_is_400(api: httpx.Client) -> None:
    """Unparseable bodies are refused as the spec says (Neither JSON nor YAML ...)."""
    assert create(api, "my-registry").status_code == 202
    assert_error(patch(api, "my-registry", b"{not json " + SECRET.encode()), 400)


def test_create_without_name_is_400(api: httpx.Client) -> None:
    """POST needs a name."""
    assert_error(api.post("/dockerRegistrySecrets", json={"data": {".dockerconfigjson": VALUE}}), 400)


def test_create_with_a_broken_dockerconfigjson_is_400_and_stores_nothing(
    api: httpx.Client, emulator: AICoreEmulator
) -> None:
    """A refused create leaves no secret behind."""
    assert_error(create(api, "my-registry", value="{broken"), 400)
    assert emulator.inspect.names("tenant-a") == []


# --- content types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/merge-patch+json", "application/json", "application/json; charset=utf-8"]
)
def test_patch_accepts_both_json_content_types(api: httpx.Client, emulator: AICoreEmulator, content_type: str) -> None:
    """The spec's merge-patch+json and the SDK's application/json both work."""
    assert create(api, "my-registry", value="{}").status_code == 202
    response = patch(api, "my-registry", {"data": {".dockerconfigjson": VALUE}}, content_type)
    assert response.status_code == 202
    assert emulator.inspect.stored("tenant-a", "my-registry") == VALUE


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_patch_refuses_other_content_types(api: httpx.Client, content_type: str) -> None:
    """Anything but the two JSON types: 415."""
    assert create(api, "my-registry").status_code == 202
    assert_error(patch(api, "my-registry", {"data": {".dockerconfigjson": VALUE}}, content_type), 415)


def test_create_takes_application_json_only(api: httpx.Client) -> None:
    """POST's only content type in the spec is application/json."""
    body = json.dumps({"name": "my-registry", "data": {".dockerconfigjson": VALUE}}).encode()
    response = api.post("/dockerRegistrySecrets", content=body, headers=MERGE_PATCH)
    assert_error(response, 415)


# --- answers ---------------------------------------------------------------------------


def test_writes_answer_202_with_the_spec_bodies(api: httpx.Client) -> None:
    """Create, edit and delete are accepted with 202 and the documented bodies."""
    created = create(api, "my-registry")
    assert (created.status_code, created.json()) == (202, {"message": "Secret has been created"})
    edited = patch(api, "my-registry", {"data": {".dockerconfigjson": VALUE}})
    assert (edited.status_code, edited.json()) == (202, {"id": "my-registry", "message": "Secret has been modified"})
    deleted = api.delete("/dockerRegistrySecrets/my-registry")
    assert deleted.status_code == 202
    assert deleted.json()["id"] == "my-registry"
    assert isinstance(deleted.json()["message"], str)


def test_every_answer_has_a_request_id(api: httpx.Client) -> None:
    """Successes carry X-Request-Id too, and ids differ between requests."""
    ids = {api.get("/dockerRegistrySecrets").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_unknown_names_are_404(api: httpx.Client) -> None:
    """GET, PATCH and DELETE of a name that does not exist: 404 in the error shape."""
    assert_error(api.get("/dockerRegistrySecrets/no-such-secret"), 404)
    assert_error(patch(api, "no-such-secret", {"data": {".dockerconfigjson": VALUE}}), 404)
    assert_error(api.delete("/dockerRegistrySecrets/no-such-secret"), 404)


def test_create_of_an_existing_name_is_409(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """A second create of the same name is refused and keeps the first value."""
    assert create(api, "my-registry", value="{}").status_code == 202
    error = assert_error(create(api, "my-registry"), 409)
    assert error["code"] == "AlreadyExists"
    assert emulator.inspect.stored("tenant-a", "my-registry") == "{}"


def test_delete_removes_the_secret(api: httpx.Client) -> None:
    """After a delete the name is unknown again."""
    create(api, "my-registry")
    api.delete("/dockerRegistrySecrets/my-registry")
    assert api.get("/dockerRegistrySecrets/my-registry").status_code == 404


# --- write-only data -------------------------------------------------------------------


def test_data_is_write_only(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """GET and list return names only; the stored value is reachable through the inspection interface only."""
    create(api, "my-registry")
    one = api.get("/dockerRegistrySecrets/my-registry")
    listing = api.get("/dockerRegistrySecrets")
    assert one.json() == {"name": "my-registry"}
    assert listing.json() == {"count": 1, "resources": [{"name": "my-registry"}]}
    assert SECRET not in one.text + listing.text
    assert emulator.inspect.stored("tenant-a", "my-registry") == VALUE


# --- listing ---------------------------------------------------------------------------


def test_list_pages_with_top_and_skip(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """$top and $skip window the names; count is the page size unless $count=true."""
    for index in range(7):
        emulator.inspect.seed("tenant-a", f"secret-{index}", "{}")
    page = api.get("/dockerRegistrySecrets", params={"$top": "3", "$skip": "2"}).json()
    assert page == {"count": 3, "resources": [{"name": f"secret-{i}"} for i in (2, 3, 4)]}
    counted = api.get("/dockerRegistrySecrets", params={"$top": "3", "$skip": "6", "$count": "true"}).json()
    assert counted == {"count": 7, "resources": [{"name": "secret-6"}]}
    assert api.get("/dockerRegistrySecrets", params={"$skip": "9"}).json() == {"count": 0, "resources": []}


@pytest.mark.parametrize("params", [{"$top": "-1"}, {"$skip": "x"}, {"$top": "1.5"}, {"$count": "maybe"}])
def test_list_refuses_bad_query_parameters(api: httpx.Client, params: dict[str, str]) -> None:
    """$top and $skip are integers >= 0, $count a boolean."""
    assert_error(api.get("/dockerRegistrySecrets", params=params), 400)


# --- quota -----------------------------------------------------------------------------


def test_quota_is_50_by_default(api: httpx.Client) -> None:
    """A tenant may hold 50 Docker registry secrets."""
    create(api, "my-registry")
    body = api.get("/resourceQuota/dockerRegistrySecrets").json()
    assert body == {"usage": {"count": 1}, "quota": {"maxCount": 50}}


def test_quota_only_leaves_out_the_usage(api: httpx.Client) -> None:
    """quotaOnly=true answers the limit alone."""
    body = api.get("/resourceQuota/dockerRegistrySecrets", params={"quotaOnly": "true"}).json()
    assert body == {"quota": {"maxCount": 50}}


def test_create_beyond_the_quota_is_refused(emulator: AICoreEmulator) -> None:
    """The (quota + 1)th create is refused; edits of existing secrets still work."""
    key = emulator.add_tenant("small", quota=2)
    with api_client(key) as api:
        assert [create(api, f"secret-{i}").status_code for i in range(2)] == [202, 202]
        error = assert_error(create(api, "secret-2"), 400)
        assert error["code"] == "QuotaExceeded"
        assert patch(api, "secret-0", {"data": {".dockerconfigjson": VALUE}}).status_code == 202
    assert emulator.inspect.names("small") == ["secret-0", "secret-1"]


# --- headers, roles, tenants, tokens ---------------------------------------------------


def test_ai_resource_group_is_accepted_and_ignored(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """Secrets are tenant-wide: a resource group header changes nothing."""
    headers = {"AI-Resource-Group": "some-group"}
    body = {"name": "my-registry", "data": {".dockerconfigjson": VALUE}}
    assert api.post("/dockerRegistrySecrets", json=body, headers=headers).status_code == 202
    assert api.get("/dockerRegistrySecrets", headers={"AI-Resource-Group": "other"}).json()["count"] == 1
    assert emulator.inspect.stored("tenant-a", "my-registry") == VALUE


def test_writes_need_the_editor_role(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """Without the editor role: 403 on create, edit and delete; names can still be read."""
    create(api, "my-registry", value="{}")
    emulator.set_editor("tenant-a", False)
    assert_error(create(api, "other-registry"), 403)
    assert_error(patch(api, "my-registry", {"data": {".dockerconfigjson": VALUE}}), 403)
    assert_error(api.delete("/dockerRegistrySecrets/my-registry"), 403)
    assert api.get("/dockerRegistrySecrets/my-registry").status_code == 200
    assert api.get("/dockerRegistrySecrets").json()["count"] == 1
    assert emulator.inspect.stored("tenant-a", "my-registry") == "{}"


def test_tenants_are_isolated(api: httpx.Client, emulator: AICoreEmulator, key: dict[str, Any]) -> None:
    """Each tenant sees its own secrets, and a token of one tenant is refused by another."""
    other = emulator.add_tenant("tenant-b")
    create(api, "my-registry")
    with api_client(other) as api_b:
        assert api_b.get("/dockerRegistrySecrets").json()["count"] == 0
    stranger = httpx.get(
        other["serviceurls"]["AI_API_URL"] + "/v2/admin/dockerRegistrySecrets",
        headers={"Authorization": api.headers["Authorization"]},
        verify=PLAIN,
    )
    assert_error(stranger, 401)


@pytest.mark.parametrize("authorization", [None, "Bearer nonsense", "Basic dXNlcjpwYXNz"])
def test_api_needs_a_live_bearer_token(key: dict[str, Any], authorization: str | None) -> None:
    """No token, an unknown token or another scheme: 401."""
    headers = {"Authorization": authorization} if authorization else {}
    url = key["serviceurls"]["AI_API_URL"] + "/v2/admin/dockerRegistrySecrets"
    response = httpx.get(url, headers=headers, verify=PLAIN)
    assert_error(response, 401)


def test_tokens_expire_on_the_emulators_clock(api: httpx.Client, clock: FakeClock, emulator: AICoreEmulator) -> None:
    """A token is refused once token_ttl seconds have passed."""
    assert api.get("/dockerRegistrySecrets").status_code == 200
    clock.advance(emulator.token_ttl - 1)
    assert api.get("/dockerRegistrySecrets").status_code == 200
    clock.advance(1)
    assert_error(api.get("/dockerRegistrySecrets"), 401)


def test_expire_tokens_knob_revokes_issued_tokens(api: httpx.Client, emulator: AICoreEmulator) -> None:
    """expire_tokens makes every token issued so far invalid."""
    emulator.expire_tokens("tenant-a")
    assert_error(api.get("/dockerRegistrySecrets"), 401)


# --- routing ---------------------------------------------------------------------------


def test_unknown_paths_and_tenants_are_404(api: httpx.Client, key: dict[str, Any], emulator: AICoreEmulator) -> None:
    """Paths outside the six endpoints, and tenants that do not exist, answer 404 in the error shape."""
    assert_error(api.get("/objectStoreSecrets"), 404)
    assert_error(httpx.get(emulator.url + "/api/nobody/v2/admin/dockerRegistrySecrets", verify=PLAIN), 404)
    assert_error(httpx.get(emulator.url + "/", verify=PLAIN), 404)


def test_wrong_method_is_405_with_allow(api: httpx.Client) -> None:
    """PUT on a secret is not an operation of the spec."""
    response = api.put("/dockerRegistrySecrets/my-registry", json={})
    assert_error(response, 405)
    assert response.headers["allow"] == "GET, PATCH, DELETE"
