"""No Vault token or secret value reaches the service's log output, even with a traceback.

hvac's request frame holds the ``X-Vault-Token`` header in its locals; a renderer that dumps
frame locals (structlog's default rich and dict tracebacks) would print it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import hvac
import pytest
import structlog
import urllib3.exceptions

from service import logs
from service.config import SecretRef, SourceConfig, VaultAuthConfig, VaultConfig
from service.errors import VaultUnavailable
from service.sandbox.processes import free_port
from service.vault import Location, VaultSource
from service.vault.session import vault_client
from tests.integration.vault.conftest import FIXED_NOW, ApproleFactory, FakeClock, SessionFactory

SENTINEL_TOKEN = "s.SENTINELtokenVALUE0123456789abcd"
WHOAMI = Location(kind="token", mount="auth/token", path="lookup-self")

LogOutput = Callable[..., io.StringIO]


@pytest.fixture
def log_output() -> Iterator[LogOutput]:
    """Configure the service's logging into a buffer; restore the previous setup afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {name: logging.getLogger(name).level for name in logs.QUIET_LIBRARIES}
    saved_structlog = structlog.get_config()
    buffers: list[io.StringIO] = []

    def configure(fmt: str = "json", level: str = "info") -> io.StringIO:
        buffer = io.StringIO()
        logs.configure(level=level, fmt=fmt, stream=buffer)
        buffers.append(buffer)
        return buffer

    yield configure
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.configure(**saved_structlog)


def frame_locals_hold(text: str, error: BaseException) -> bool:
    """True when some frame of the traceback has a local whose repr contains ``text``."""
    tb = error.__traceback__
    while tb is not None:
        if any(text in repr(value) for value in tb.tb_frame.f_locals.values()):
            return True
        tb = tb.tb_next
    return False


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_hvac_failure_logged_with_traceback_hides_the_token(log_output: LogOutput, fmt: str) -> None:
    """An hvac request failing while holding a token logs a traceback without the token."""
    buffer = log_output(fmt)
    client = vault_client(VaultConfig(address=f"http://127.0.0.1:{free_port()}"))  # our transport, as in production
    client.token = SENTINEL_TOKEN
    with pytest.raises(urllib3.exceptions.NewConnectionError) as caught:
        client.secrets.kv.v2.read_secret_version("acme", mount_point="secret", raise_on_deleted_version=True)
    client.adapter.close()

    logs.get_logger("test").error("vault.read.failed", mount="secret", exc_info=caught.value)

    assert frame_locals_hold(SENTINEL_TOKEN, caught.value)  # the danger is real: a frame holds the token
    output = buffer.getvalue()
    assert "Traceback" in output
    assert "NewConnectionError" in output
    assert "vault.read.failed" in output
    assert SENTINEL_TOKEN not in output


def test_adapter_error_logged_with_traceback_hides_the_token(
    log_output: LogOutput, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter's VaultUnavailable logs a traceback with no token and no hvac/urllib3 chain."""
    buffer = log_output("json")
    monkeypatch.setenv("ROTATOR_TEST_SENTINEL_TOKEN", SENTINEL_TOKEN)
    auth = VaultAuthConfig(method="token", token=SecretRef(env="ROTATOR_TEST_SENTINEL_TOKEN"))
    session = make_session(auth, address=f"http://127.0.0.1:{free_port()}")
    source = VaultSource(session=session, clock=lambda: FIXED_NOW)

    with pytest.raises(VaultUnavailable) as caught:
        source.read(SourceConfig(path="acme"))
    logs.get_logger("test").error("rotation.failed", error=caught.value.code, exc_info=caught.value)

    output = buffer.getvalue()
    assert "Traceback" in output
    assert "VaultUnavailable" in output
    assert "urllib3.exceptions" not in output
    assert "hvac.exceptions" not in output
    assert SENTINEL_TOKEN not in output
    assert SENTINEL_TOKEN not in str(caught.value)
    assert SENTINEL_TOKEN not in repr(caught.value)


def test_login_renew_read_and_revoke_log_no_secret(
    log_output: LogOutput, root: hvac.Client, kv2_mount: str, make_approle: ApproleFactory, make_session: SessionFactory
) -> None:
    """A whole session's log lines name methods, mounts and paths, never the secret id, token or password."""
    buffer = log_output("json", "debug")  # vault.read is a debug line
    policy_name = "read-" + kv2_mount
    root.sys.create_or_update_policy(policy_name, f'path "{kv2_mount}/data/*" {{ capabilities = ["read"] }}')
    root.secrets.kv.v2.create_or_update_secret(
        "acme", secret={"username": "robot", "password": "SENTINEL-PASSWORD-4711"}, mount_point=kv2_mount
    )
    auth = make_approle(policies=[policy_name])
    assert auth.secret_id is not None
    assert isinstance(auth.secret_id.file, Path)
    secret_id = auth.secret_id.file.read_text().strip()
    clock = FakeClock()
    session = make_session(auth, clock=clock)
    session.login()
    token = session.request(lambda client: client.auth.token.lookup_self(), at=WHOAMI)["data"]["id"]
    clock.advance(3000)  # past 2/3 of the 1h TTL: renew
    session.maintain()
    VaultSource(session=session, clock=lambda: FIXED_NOW).read(SourceConfig(mount=kv2_mount, path="acme"))
    session.revoke()
    root.sys.delete_policy(policy_name)

    output = buffer.getvalue()
    for event in ("vault.login", "vault.renew", "vault.read", "vault.revoke"):
        assert event in output
    for secret in (secret_id, token, "SENTINEL-PASSWORD-4711"):
        assert secret not in output
