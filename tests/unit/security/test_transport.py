"""Cleartext endpoints: http:// refused for non-loopback hosts unless the endpoint says insecure_http."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from service.aicore.servicekey import cleartext_issues, parse_service_key
from service.aicore.tls import tls_context
from service.app import App
from service.checks import transport_warnings
from service.cli import main
from service.config import load_settings
from service.errors import ConfigError
from service.registry.endpoints import realm_allowed
from service.transport import cleartext_rule, database_tls_warning, is_loopback

BASE = """
[vault]
address = "{vault}"
{vault_flag}

[audit]
key = {{env = "TEST_AUDIT_KEY"}}

[database]
url = "{database}"

[targets.eu]
service_key = {{file = "{key}"}}
{target_flag}

[[secrets]]
name = "acme-registry"
targets = ["eu"]
registries = [{registries}]
source = {{path = "registries/acme"}}
schedule = {{every = "6h"}}
{secret_flag}
"""

KEY = {
    "clientid": "sb-client",
    "clientsecret": "sentinel-client-secret",
    "url": "https://tenant.authentication.example.com",
    "serviceurls": {"AI_API_URL": "https://api.ai.example.com"},
}


def config(tmp_path: Path, *, key: dict[str, object] | None = None, **values: str) -> Path:
    fields = {
        "vault": "https://vault.example.com:8200",
        "vault_flag": "",
        "database": "postgresql+psycopg://rotator@127.0.0.1:5432/rotator",
        "target_flag": "",
        "registries": '"registry.acme.example"',
        "secret_flag": "",
    }
    fields.update(values)
    key_file = tmp_path / "eu.json"
    key_file.write_text(json.dumps(key or KEY))
    key_file.chmod(0o600)
    path = tmp_path / "rotator.toml"
    path.write_text(BASE.format(key=key_file, **fields))
    return path


def errors(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("vault.localhost", True),
        ("10.0.0.1", False),
        ("vault", False),
        ("localhost.example.com", False),
        ("128.0.0.1", False),
        ("::2", False),
    ],
)
def test_loopback_is_127_8_and_1_and_localhost(host: str, loopback: bool) -> None:
    """Only 127.0.0.0/8, ::1 and localhost names count as loopback; nothing is resolved."""
    assert is_loopback(host) is loopback


def test_rule_refuses_warns_or_passes() -> None:
    """http:// to a remote host is refused, allowed with a warning by the flag, and the flag on https is refused."""
    refused = cleartext_rule("http://vault:8200", insecure_http=False, flag="vault.insecure_http")
    assert refused.problem is not None
    assert "vault" in refused.problem
    assert "vault.insecure_http = true" in refused.problem
    allowed = cleartext_rule("http://vault:8200", insecure_http=True, flag="vault.insecure_http")
    assert (allowed.problem, allowed.warning is not None) == (None, True)
    wrong_flag = cleartext_rule("https://user:pw@vault:8200/x?y", insecure_http=True, flag="vault.insecure_http")
    assert wrong_flag.problem is not None
    assert "https://vault:8200" in wrong_flag.problem
    assert "pw" not in wrong_flag.problem, "an URL in a message never carries userinfo"
    assert cleartext_rule("http://127.0.0.1:8200", insecure_http=False, flag="f") == cleartext_rule(
        "https://vault:8200", insecure_http=False, flag="f"
    )


def test_http_vault_address_to_a_remote_host_is_a_config_error(tmp_path: Path) -> None:
    """vault.address http://vault:8200 without insecure_http: one error naming vault and the flag to set."""
    text = errors(config(tmp_path, vault="http://vault:8200"))
    assert "vault: http:// to non-loopback host vault would send credentials in cleartext" in text
    assert "vault.insecure_http = true" in text


def test_insecure_http_on_an_https_vault_is_a_config_error(tmp_path: Path) -> None:
    """insecure_http = true with an https:// address is refused, naming vault.insecure_http."""
    text = errors(config(tmp_path, vault_flag="insecure_http = true"))
    assert "vault.insecure_http = true, but https://vault.example.com:8200 is not an http:// endpoint" in text


def test_loopback_http_needs_no_flag(tmp_path: Path) -> None:
    """The tests' and the demo's http://127.0.0.1 endpoints stay allowed without a flag and without a warning."""
    settings = load_settings(
        config(tmp_path, vault="http://127.0.0.1:8200", registries='"http://127.0.0.1:5000"'), environ={}
    )
    assert transport_warnings(settings) == []


def test_allowed_cleartext_endpoints_are_warnings_naming_them(tmp_path: Path) -> None:
    """With insecure_http set, Vault and registries load, and start-up warns naming each endpoint."""
    path = config(
        tmp_path,
        vault="http://vault:8200",
        vault_flag="insecure_http = true",
        registries='"http://registry.internal:5000", "ghcr.io"',
        secret_flag="insecure_http = true",
    )
    warnings = transport_warnings(load_settings(path, environ={}))
    assert [(w.location, w.severity) for w in warnings] == [
        ("vault.address", "warning"),
        ("secrets[0] (acme-registry).registries", "warning"),
    ]
    assert "vault" in warnings[0].problem
    assert "registry.internal" in warnings[1].problem


def test_http_registry_to_a_remote_host_is_a_config_error(tmp_path: Path) -> None:
    """An http:// registry not on loopback is refused, naming the secret and its insecure_http."""
    text = errors(config(tmp_path, registries='"http://registry.internal:5000"'))
    assert "secrets[0] (acme-registry): registries: http:// to non-loopback host registry.internal" in text
    assert "set insecure_http = true" in text


def test_insecure_http_on_a_secret_without_http_registries_is_a_config_error(tmp_path: Path) -> None:
    """insecure_http = true on a secret whose registries are all https is refused."""
    text = errors(config(tmp_path, secret_flag="insecure_http = true"))
    assert "secrets[0] (acme-registry): insecure_http = true, but no registry of this secret is an http:// URL" in text


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("postgresql+psycopg://rotator@db.example.com:5432/rotator", True),
        ("postgresql+psycopg://rotator@db.example.com:5432/rotator?sslmode=prefer", True),
        ("postgresql+psycopg://rotator@db.example.com:5432/rotator?sslmode=require", False),
        ("postgresql+psycopg://rotator@db.example.com/rotator?sslmode=verify-full&sslrootcert=/ca.pem", False),
        ("postgresql+psycopg://rotator@127.0.0.1:5432/rotator", False),
        ("postgresql+psycopg://rotator@localhost/rotator", False),
        ("postgresql+psycopg://rotator@/rotator?host=/var/run/postgresql", False),
        ("postgresql+psycopg://rotator@/rotator?host=db.example.com", True),
    ],
)
def test_database_without_tls_to_a_remote_host_warns(url: str, warned: bool) -> None:
    """A non-loopback PostgreSQL without sslmode=require|verify-ca|verify-full gets a warning; sockets do not."""
    assert (database_tls_warning(url) is not None) is warned


def key_with(**urls: str) -> dict[str, object]:
    key: dict[str, object] = {**KEY, "serviceurls": {"AI_API_URL": urls.get("api", KEY["serviceurls"]["AI_API_URL"])}}  # type: ignore[index]
    key["url"] = urls.get("auth", KEY["url"])
    return key


def test_service_key_over_http_is_refused_naming_the_service_key() -> None:
    """A key whose url or AI_API_URL is http:// to a remote host is an error at targets.<t>.service_key."""
    key = parse_service_key(json.dumps(key_with(auth="http://auth.example.com", api="http://api.example.com")))
    issues = cleartext_issues(key, target="eu", insecure_http=False)
    assert [(i.location, i.severity) for i in issues] == [("targets.eu.service_key", "error")] * 2
    assert issues[0].problem.startswith("service key field url: http:// to non-loopback host auth.example.com")
    assert issues[1].problem.startswith("service key field serviceurls.AI_API_URL: http:// to non-loopback host")
    assert "targets.eu.insecure_http = true" in issues[0].problem
    assert all("sentinel-client-secret" not in i.problem for i in issues)


def test_service_key_over_http_with_the_flag_warns() -> None:
    """targets.<t>.insecure_http = true turns the refusal into a warning naming the endpoint."""
    key = parse_service_key(json.dumps(key_with(api="http://aicore:8900")))
    issues = cleartext_issues(key, target="eu", insecure_http=True)
    assert [(i.location, i.severity) for i in issues] == [("targets.eu.service_key", "warning")]
    assert "aicore" in issues[0].problem


def test_target_insecure_http_with_an_https_key_is_an_error() -> None:
    """targets.<t>.insecure_http = true on a key with https URLs only is an error naming that flag."""
    key = parse_service_key(json.dumps(KEY))
    [issue] = cleartext_issues(key, target="eu", insecure_http=True)
    assert (issue.location, issue.severity) == ("targets.eu.insecure_http", "error")


def test_loopback_service_key_passes() -> None:
    """The emulator's http://127.0.0.1 service keys need no flag."""
    key = parse_service_key(json.dumps(key_with(auth="http://127.0.0.1:8900", api="http://127.0.0.1:8900")))
    assert cleartext_issues(key, target="eu", insecure_http=False) == []


def test_check_offline_refuses_an_http_service_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --offline` reads a key file and exits 2 naming targets.<t>.service_key for a cleartext URL."""
    monkeypatch.setenv("TEST_AUDIT_KEY", "y" * 32)
    monkeypatch.setenv("VAULT_TOKEN", "x")
    path = config(tmp_path, key=key_with(api="http://api.example.com"))
    assert main(["check", "--offline", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: targets.eu.service_key: service key field serviceurls.AI_API_URL: http://" in err


def test_check_offline_warns_about_allowed_cleartext_and_plain_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --offline` passes with warnings naming the http Vault, the http key and a database without TLS."""
    monkeypatch.setenv("TEST_AUDIT_KEY", "y" * 32)
    monkeypatch.setenv("VAULT_TOKEN", "x")
    path = config(
        tmp_path,
        key=key_with(api="http://aicore:8900", auth="http://aicore:8900"),
        vault="http://vault:8200",
        vault_flag="insecure_http = true",
        target_flag="insecure_http = true",
        database="postgresql+psycopg://rotator@postgres:5432/rotator",
    )
    assert main(["check", "--offline", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: vault.address: cleartext http:// to vault is allowed by vault.insecure_http" in err
    assert f"warning: {path}: database.url: the database at postgres is reached without sslmode" in err
    assert f"warning: {path}: targets.eu.service_key: service key field url: cleartext http:// to aicore" in err


def test_client_build_refuses_an_http_service_key_read_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key (file, env or Vault) with a cleartext URL stops the target's client build: ConfigError, no request."""
    monkeypatch.setenv("TEST_AUDIT_KEY", "y" * 32)
    settings = load_settings(config(tmp_path, key=key_with(auth="http://auth.example.com")), environ={})
    with App(settings) as app, pytest.raises(ConfigError) as caught:
        app.store("eu")
    assert [issue.location for issue in caught.value.issues] == ["targets.eu.service_key"]
    assert "service key field url: http:// to non-loopback host auth.example.com" in str(caught.value)


def test_client_build_with_insecure_http_warns_naming_the_endpoint(tmp_path: Path) -> None:
    """With targets.<t>.insecure_http the client is built, and the start logs a warning naming key and host."""
    path = config(tmp_path, key=key_with(api="http://aicore:8900"), target_flag="insecure_http = true")
    with App(load_settings(path, environ={})) as app, capture_logs() as logs:
        assert app.store("eu").api_host == "aicore:8900"
    [warning] = [entry for entry in logs if entry["event"] == "transport.insecure"]
    assert warning["log_level"] == "warning"
    assert warning["key"] == "targets.eu.service_key"
    assert "aicore" in warning["problem"]


def test_target_ca_cert_is_used_for_its_client(tmp_path: Path) -> None:
    """targets.<t>.ca_cert: a bundle that cannot be loaded is a ConfigError naming it, so the setting is used."""
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    path = config(tmp_path, target_flag=f'ca_cert = "{bogus}"')
    with App(load_settings(path, environ={})) as app, pytest.raises(ConfigError) as caught:
        app.store("eu")
    [issue] = caught.value.issues
    assert issue.location == "targets.eu.ca_cert"
    assert issue.problem.startswith(f"cannot load CA bundle {bogus}")


def test_target_ca_cert_is_trusted(tmp_path: Path) -> None:
    """A readable bundle builds a verifying client whose context trusts exactly that bundle."""
    import certifi

    path = config(tmp_path, target_flag=f'ca_cert = "{certifi.where()}"')
    with App(load_settings(path, environ={})) as app:
        assert app.store("eu").api_host == "api.ai.example.com"
    context = tls_context(parse_service_key(json.dumps(KEY)), ca_file=certifi.where())
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_check_offline_names_a_missing_target_ca_cert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --offline`: a targets.<t>.ca_cert that does not exist is an error naming the key."""
    monkeypatch.setenv("TEST_AUDIT_KEY", "y" * 32)
    monkeypatch.setenv("VAULT_TOKEN", "x")
    path = config(tmp_path, target_flag=f'ca_cert = "{tmp_path / "nowhere.pem"}"')
    assert main(["check", "--offline", "-c", str(path)]) == 2
    assert "targets.eu.ca_cert: CA bundle" in capsys.readouterr().err


def test_run_and_once_start_by_logging_allowed_cleartext_endpoints(tmp_path: Path) -> None:
    """App.warn_insecure_transport (called by run and once) logs one warning per endpoint and for the database."""
    path = config(
        tmp_path,
        vault="http://vault:8200",
        vault_flag="insecure_http = true",
        database="postgresql+psycopg://rotator@db.example.com/rotator",
    )
    with App(load_settings(path, environ={})) as app, capture_logs() as logs:
        app.warn_insecure_transport()
    assert [(e["event"], e["key"]) for e in logs] == [
        ("transport.insecure", "vault.address"),
        ("transport.insecure", "database.url"),
    ]


@pytest.mark.parametrize(
    ("realm", "base", "allowed"),
    [
        ("http://127.0.0.1:5001/token", "http://127.0.0.1:5000", True),
        ("http://registry.internal:5001/token", "http://registry.internal:5000", True),
        ("http://auth.elsewhere/token", "http://registry.internal:5000", False),
        ("http://auth.elsewhere/token", "http://127.0.0.1:5000", False),
        ("https://auth.elsewhere/token", "http://registry.internal:5000", True),
    ],
)
def test_an_http_registry_cannot_lead_the_credential_to_another_cleartext_host(
    realm: str, base: str, allowed: bool
) -> None:
    """A plain-HTTP token realm is followed only on the registry's own host or loopback."""
    assert realm_allowed(realm, base=base) is allowed
