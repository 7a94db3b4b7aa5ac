"""The urllib3 transport under hvac, against real sockets: proxies, CA bundles, redirects and broken connections.

The proxy is a small forwarding proxy in this process (absolute-URL requests for http://,
CONNECT tunnels for https://); the Vault behind it is the real OpenBao dev server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import hvac
import pytest
import trustme

from service.config import SecretRef, SourceConfig, VaultAuthConfig, VaultConfig
from service.errors import VaultUnavailable
from service.vault import VaultSource, connect
from tests.harness import VaultServer
from tests.integration.vault.conftest import FIXED_NOW, read_local, unique
from tests.integration.vault.servers import OpenBaoTlsDevServer
from tests.integration.vault.test_failures import SENTINEL_TOKEN, assert_translated

SKIPPED_HEADERS = {"connection", "keep-alive", "proxy-authorization", "transfer-encoding", "proxy-connection"}


@dataclass
class Seen:
    """What the proxy was asked: request lines and the headers of each request."""

    lines: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads ``Seen``."""

    def _record(self) -> None:
        self.server.seen.lines.append(f"{self.command} {self.path}")
        self.server.seen.headers.append({k.lower(): v for k, v in self.headers.items()})

    def do_CONNECT(self) -> None:
        self._record()
        host, port = self.path.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            pipe = threading.Thread(target=_copy, args=(upstream, self.connection), daemon=True)
            pipe.start()
            _copy(self.connection, upstream)
            pipe.join(timeout=5)
        self.close_connection = True

    def _forward(self) -> None:
        self._record()
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in SKIPPED_HEADERS}
        upstream = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=10)
        upstream.request(self.command, url.path + (f"?{url.query}" if url.query else ""), body or None, headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in {*SKIPPED_HEADERS, "content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _forward  # noqa: N815 (http.server's handler names)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen = Seen()


@pytest.fixture
def proxy() -> Iterator[_ProxyServer]:
    """A forwarding proxy on a free port, for as long as the test runs."""
    server = _ProxyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No proxy, CA or netrc setting of the machine leaks into the test."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


@pytest.fixture
def stored(root: hvac.Client, kv2_mount: str) -> SourceConfig:
    """A KV v2 secret on the shared server."""
    path = unique("proxied")
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": "u", "password": "p"}, mount_point=kv2_mount
    )
    return SourceConfig(mount=kv2_mount, path=path)


def test_an_http_proxy_from_the_environment_carries_every_request(
    vault_server: VaultServer,
    root_auth: VaultAuthConfig,
    stored: SourceConfig,
    proxy: _ProxyServer,
    *,
    clean_environment: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """HTTP_PROXY (with a login in its URL) is sent the whole URL and Proxy-Authorization; a netrc login is sent too."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login robot password netrc-pw\n")
    netrc.chmod(0o600)
    with pytest.MonkeyPatch.context() as env:  # undone before the fixtures' own clean-up talks to Vault
        env.setenv("NETRC", str(netrc))
        env.setenv("HTTP_PROXY", f"http://proxy-user:proxy%20pw@127.0.0.1:{proxy.server_address[1]}")
        session = connect(VaultConfig(address=vault_server.address, auth=root_auth), read_local=read_local)
    try:
        credential = VaultSource(session=session, clock=lambda: FIXED_NOW).read(stored)
    finally:
        session.close()

    assert credential.username == "u"
    assert f"GET {vault_server.address}/v1/auth/token/lookup-self" in proxy.seen.lines
    assert f"GET {vault_server.address}/v1/{stored.mount}/data/{stored.path}" in proxy.seen.lines
    assert {h.get("proxy-authorization") for h in proxy.seen.headers} == {"Basic cHJveHktdXNlcjpwcm94eSBwdw=="}
    assert {h.get("authorization") for h in proxy.seen.headers} == {"Basic cm9ib3Q6bmV0cmMtcHc="}
    assert {h.get("x-vault-request") for h in proxy.seen.headers} == {"true"}


def test_no_proxy_sends_vault_requests_past_the_proxy(
    vault_server: VaultServer, root_auth: VaultAuthConfig, proxy: _ProxyServer, clean_environment: pytest.MonkeyPatch
) -> None:
    """NO_PROXY naming Vault's host: the proxy is asked nothing."""
    clean_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    clean_environment.setenv("NO_PROXY", "localhost,127.0.0.1")
    session = connect(VaultConfig(address=vault_server.address, auth=root_auth), read_local=read_local)
    try:
        session.check()
    finally:
        session.close()

    assert proxy.seen.lines == []


@pytest.fixture(scope="module")
def tls_vault() -> Iterator[OpenBaoTlsDevServer]:
    with OpenBaoTlsDevServer() as server:
        yield server


@pytest.fixture
def tls_auth(tls_vault: OpenBaoTlsDevServer, tmp_path: Path) -> VaultAuthConfig:
    token_file = tmp_path / "token"
    token_file.write_text(tls_vault.root_token)
    return VaultAuthConfig(method="token", token=SecretRef(file=token_file))


def test_https_through_a_proxy_tunnel_with_the_ca_bundle_from_the_environment(
    tls_vault: OpenBaoTlsDevServer,
    tls_auth: VaultAuthConfig,
    proxy: _ProxyServer,
    clean_environment: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY gets one CONNECT per connection and never a request line; REQUESTS_CA_BUNDLE verifies Vault."""
    clean_environment.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    clean_environment.setenv("REQUESTS_CA_BUNDLE", str(tls_vault.ca_cert))
    session = connect(VaultConfig(address=tls_vault.address, auth=tls_auth), read_local=read_local)
    try:
        for _ in range(3):
            session.check()
    finally:
        session.close()

    assert proxy.seen.lines == [f"CONNECT 127.0.0.1:{tls_vault.port}"]  # one kept-alive connection, tunnelled


def test_curl_ca_bundle_is_used_and_a_wrong_one_fails_tls(
    tls_vault: OpenBaoTlsDevServer, tls_auth: VaultAuthConfig, clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CURL_CA_BUNDLE verifies Vault when REQUESTS_CA_BUNDLE is unset; without either, certifi's bundle refuses it."""
    config = VaultConfig(address=tls_vault.address, auth=tls_auth)
    with pytest.raises(VaultUnavailable, match=r"TLS verification failed for Vault at https://127\.0\.0\.1") as caught:
        connect(config, read_local=read_local)
    assert_translated(caught.value)

    clean_environment.setenv("CURL_CA_BUNDLE", str(tls_vault.ca_cert))
    session = connect(config, read_local=read_local)
    session.close()


def test_a_bundle_without_certificates_is_named_at_connect(
    tls_auth: VaultAuthConfig, clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A REQUESTS_CA_BUNDLE that holds no certificate fails connect with the TLS settings hint, no library error."""
    garbage = tmp_path / "bundle.pem"
    garbage.write_text("not a certificate\n")
    clean_environment.setenv("REQUESTS_CA_BUNDLE", str(garbage))

    with pytest.raises(VaultUnavailable, match="cannot use the TLS settings for Vault at https://") as caught:
        connect(VaultConfig(address="https://127.0.0.1:8200", auth=tls_auth), read_local=read_local)

    assert_translated(caught.value)


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer``: a redirect or a 200; records the headers it saw."""

    server: _AnswerServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads ``seen``."""

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _AnswerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, status: int, location: str = "") -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.status, self.location = status, location
        self.seen: list[dict[str, str]] = []

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def redirecting() -> Iterator[tuple[_AnswerServer, _AnswerServer]]:
    """A server that redirects every request to a second one (on another port, i.e. another origin)."""
    other = _AnswerServer(status=200)
    first = _AnswerServer(status=307, location=f"{other.address}/v1/auth/token/lookup-self?from=redirect")
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in (first, other)]
    for thread in threads:
        thread.start()
    yield first, other
    for server in (first, other):
        server.shutdown()
        server.server_close()


def test_a_redirect_is_not_followed_and_the_token_stays_home(
    redirecting: tuple[_AnswerServer, _AnswerServer], clean_environment: pytest.MonkeyPatch
) -> None:
    """A 307 is VaultUnavailable naming the status and the other origin; the other server never sees the token."""
    first, other = redirecting
    clean_environment.setenv("ROTATOR_TEST_SENTINEL_TOKEN", SENTINEL_TOKEN)
    auth = VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_SENTINEL_TOKEN"))

    with pytest.raises(VaultUnavailable, match=r"redirect \(HTTP 307 to http://127\.0\.0\.1:\d+\)") as caught:
        connect(VaultConfig(address=first.address, auth=auth), read_local=read_local)

    assert_translated(caught.value)
    assert "from=redirect" not in str(caught.value)
    assert [seen.get("x-vault-token") for seen in first.seen] == [SENTINEL_TOKEN]
    assert other.seen == []


@pytest.fixture
def hanging_up() -> Iterator[str]:
    """A server that reads each request and closes the connection without an answer."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def test_a_connection_dropped_before_the_answer_cannot_connect(
    hanging_up: str, clean_environment: pytest.MonkeyPatch
) -> None:
    """The server hangs up after reading the request: VaultUnavailable "cannot connect", nothing attached."""
    clean_environment.setenv("ROTATOR_TEST_SENTINEL_TOKEN", SENTINEL_TOKEN)
    auth = VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_SENTINEL_TOKEN"))

    with pytest.raises(VaultUnavailable, match=f"cannot connect to Vault at {hanging_up}; check") as caught:
        connect(VaultConfig(address=hanging_up, auth=auth), read_local=read_local)

    assert_translated(caught.value)


def test_a_name_that_does_not_resolve_cannot_connect(clean_environment: pytest.MonkeyPatch) -> None:
    """A Vault host name DNS does not know (.invalid never resolves) is VaultUnavailable "cannot connect"."""
    clean_environment.setenv("ROTATOR_TEST_SENTINEL_TOKEN", SENTINEL_TOKEN)
    auth = VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_SENTINEL_TOKEN"))
    address = "https://vault.invalid:8200"

    with pytest.raises(VaultUnavailable, match=f"cannot connect to Vault at {address}; check") as caught:
        connect(VaultConfig(address=address, auth=auth), read_local=read_local)

    assert_translated(caught.value)


class _WhoAmI(BaseHTTPRequestHandler):
    """Answers lookup-self with a token without TTL; records the names in the client's certificate."""

    protocol_version = "HTTP/1.1"
    server: _MutualTlsServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads ``subjects``."""

    def do_GET(self) -> None:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        self.server.subjects.append(str(peer.get("subjectAltName")) if peer else "")
        body = json.dumps({"data": {"ttl": 0, "renewable": False}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _MutualTlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ca: trustme.CA) -> None:
        super().__init__(("127.0.0.1", 0), _WhoAmI)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no handshake
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.subjects: list[str] = []

    def handle_error(self, request: object, client_address: object) -> None:
        """A refused handshake is the test's expectation, not noise on stderr."""


@pytest.fixture
def mutual_tls(tmp_path: Path) -> Iterator[tuple[_MutualTlsServer, Path, Path]]:
    """A server that requires a client certificate from its CA; the CA file and a client key-and-certificate file."""
    ca = trustme.CA()
    ca_file, client_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("rotator.example").private_key_and_cert_chain_pem.write_to_path(str(client_file))
    server = _MutualTlsServer(ca)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, ca_file, client_file
    server.shutdown()
    server.server_close()


def test_hvac_client_certificate_variables_give_mutual_tls(
    mutual_tls: tuple[_MutualTlsServer, Path, Path], clean_environment: pytest.MonkeyPatch
) -> None:
    """VAULT_CLIENT_CERT (key in the same file) is presented, as hvac did; without it the server refuses us."""
    server, ca_file, client_file = mutual_tls
    clean_environment.setenv("ROTATOR_TEST_SENTINEL_TOKEN", SENTINEL_TOKEN)
    clean_environment.delenv("VAULT_CLIENT_KEY", raising=False)
    clean_environment.delenv("VAULT_CLIENT_CERT", raising=False)
    auth = VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_SENTINEL_TOKEN"))
    config = VaultConfig(address=f"https://127.0.0.1:{server.server_address[1]}", ca_cert=ca_file, auth=auth)

    with pytest.raises(VaultUnavailable) as refused:
        connect(config, read_local=read_local)
    assert_translated(refused.value)

    clean_environment.setenv("VAULT_CLIENT_CERT", str(client_file))
    session = connect(config, read_local=read_local)
    session.close()
    assert server.subjects == ["(('DNS', 'rotator.example'),)"]  # lookup-self, with our certificate
