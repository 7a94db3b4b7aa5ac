"""The transport's pure parts: the pool a route gives, requests' query encoding, the reply hvac reads."""

from __future__ import annotations

import importlib.util

import pytest

from service.errors import ConfigError
from service.vault.transport import Pool, Reply, Route, _query

BUNDLE = "/nonexistent-is-fine-for-http.pem"


def pool(address: str, proxy: str | None) -> Pool:
    return Pool(address, route=Route(proxy=proxy, ca_bundle=BUNDLE, netrc=None), max_connections=4, timeout=1.0)


def test_an_http_proxy_is_sent_whole_urls_and_a_direct_pool_paths() -> None:
    """Through an HTTP proxy to http:// Vault the pool is the proxy's and gets absolute URLs; direct, it gets paths."""
    proxied = pool("http://vault.example:8200", "http://proxy.example:3128")
    direct = pool("http://vault.example:8200", None)
    assert (proxied.pool.host, proxied.pool.port, proxied.absolute) == ("proxy.example", 3128, True)
    assert (direct.pool.host, direct.pool.port, direct.absolute) == ("vault.example", 8200, False)
    assert direct.pool.pool is not None
    assert direct.pool.pool.maxsize == 4  # one connection kept per reader
    proxied.close()
    direct.close()


def test_a_proxy_urllib3_cannot_use_is_a_config_error_without_its_login() -> None:
    """An ftp:// proxy is a ConfigError naming its scheme and the variables, never the login in its URL."""
    with pytest.raises(ConfigError, match=r"the ftp:// proxy from the environment cannot be used") as caught:
        pool("http://vault.example:8200", "ftp://robot:SENTINEL@proxy.example:21")
    assert "SENTINEL" not in str(caught.value)
    assert "HTTPS_PROXY" in str(caught.value)


def test_a_socks_proxy_needs_pysocks() -> None:
    """socks5:// works with PySocks installed, and is a ConfigError saying so without it."""
    if importlib.util.find_spec("socks") is None:
        with pytest.raises(ConfigError, match="a socks proxy needs PySocks"):
            pool("http://vault.example:8200", "socks5://proxy.example:1080")
    else:
        assert pool("http://vault.example:8200", "socks5://proxy.example:1080").absolute is False


def test_query_encoding_follows_requests() -> None:
    """None values are dropped, lists repeat their key, other values become text; nothing left means no '?'."""
    assert _query({"version": None}) == ""
    assert _query(None) == ""
    assert _query({"version": 3, "list": True, "key": ["a", "b"]}) == "?version=3&list=True&key=a&key=b"


def test_reply_reads_like_the_parts_of_a_response_hvac_uses() -> None:
    """ok below 400, text decoded leniently, json() parsing the body or raising ValueError."""
    assert Reply(status_code=204, headers={}, content=b"").ok
    assert not Reply(status_code=404, headers={}, content=b"").ok
    assert Reply(status_code=200, headers={}, content=b'{"a": 1}').json() == {"a": 1}
    assert Reply(status_code=500, headers={}, content=b"\xffoops").text == "\ufffdoops"
    with pytest.raises(ValueError, match="Expecting value"):
        Reply(status_code=200, headers={}, content=b"not json").json()
