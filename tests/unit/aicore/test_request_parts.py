"""The cheap per-request parts of the AI Core client: proxy choice, request bodies, request ids."""

from __future__ import annotations

import json

import httpx
import pytest

from service.aicore.client import _Call, _content
from service.aicore.responses import request_id
from service.aicore.wire import environment_proxy
from service.model import DockerConfigJson

API = "https://api.ai.example.com/v2"


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [
        ({}, None),
        ({"https": "http://proxy:3128"}, "http://proxy:3128"),
        ({"http": "http://plain:80"}, None),
        ({"all": "socks5://any:1080"}, "socks5://any:1080"),
        ({"https": "proxy:3128", "all": "http://other:1"}, "http://proxy:3128"),
        ({"https": "http://proxy:3128", "no": "example.com"}, None),
        ({"https": "http://proxy:3128", "no": ".ai.example.com"}, None),
        ({"https": "http://proxy:3128", "no": "other.example, *"}, None),
        ({"https": "http://proxy:3128", "no": "other.example"}, "http://proxy:3128"),
    ],
)
def test_environment_proxy(proxies: dict[str, str], expected: str | None) -> None:
    """The scheme's proxy (else ALL_PROXY), http:// added to a bare host, none when NO_PROXY covers the host."""
    assert environment_proxy(API, proxies=proxies) == expected


@pytest.mark.parametrize("value", ['{"auths":{}}', '{"auths": {"r": {"password": "p\\"ü\\u2028"}}}', "x" * 300])
@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_content_is_what_json_dumps_of_the_body_writes(value: str, method: str) -> None:
    """PATCH sends {"data": ...}, POST {"name": ..., "data": ...}, byte for byte as json.dumps wrote them."""
    call = _Call("edit", method, httpx.URL(API), "my-registry", DockerConfigJson(value))
    data = {".dockerconfigjson": value}
    body = {"name": "my-registry", "data": data} if method == "POST" else {"data": data}
    assert _content(call) == json.dumps(body).encode()


def test_request_id_takes_the_first_named_header_joining_repeats() -> None:
    """x-request-id wins over x-correlationid; repeated headers are joined as httpx.Headers.get joins them."""
    response = httpx.Response(202, headers=[("X-Correlationid", "c-1"), ("X-Request-Id", "a"), ("x-request-id", "b")])
    assert request_id(response) == "a, b"
    assert request_id(httpx.Response(202, headers=[("X-Vcap-Request-Id", "v" * 200)])) == "v" * 128
    assert request_id(httpx.Response(202, headers=[("x-request-id", ""), ("date", "now")])) is None
