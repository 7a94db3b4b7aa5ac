"""One Vault read per source per sweep, however many secrets and targets share the source."""

from __future__ import annotations

import threading

import hvac
import pytest
from structlog.testing import capture_logs

from service.config import SourceConfig
from service.errors import SourceNotFound
from service.vault import VaultSource


def reads(logs: list[dict[str, object]]) -> int:
    return [entry["event"] for entry in logs].count("vault.read")


def test_sources_sharing_a_location_share_one_read(root: hvac.Client, kv2_mount: str, source: VaultSource) -> None:
    """Within a sweep the second secret gets the first read (even after a rotation), mapped with its own fields."""
    root.secrets.kv.v2.create_or_update_secret(
        "shared", secret={"username": "u", "password": "p1", "token": "t1"}, mount_point=kv2_mount
    )
    by_password = SourceConfig(mount=kv2_mount, path="shared")
    by_token = SourceConfig(mount=kv2_mount, path="/shared", password_field="token")
    sweep = source.for_sweep()

    with capture_logs() as logs:
        first = sweep.read(by_password)
        root.secrets.kv.v2.create_or_update_secret(
            "shared", secret={"username": "u", "password": "p2", "token": "t2"}, mount_point=kv2_mount
        )
        second = sweep.read(by_token)
    next_sweep = source.for_sweep().read(by_password)

    assert reads(logs) == 1
    assert (first.password, first.source.version) == ("p1", 1)
    assert (second.password, second.source.version) == ("t1", 1)
    assert first.source.request_id == second.source.request_id
    assert (next_sweep.password, next_sweep.source.version) == ("p2", 2)


def test_concurrent_readers_of_one_source_wait_for_one_read(
    root: hvac.Client, kv2_mount: str, source: VaultSource
) -> None:
    """Eight threads asking for the same source at once cause one Vault read and see the same version."""
    root.secrets.kv.v2.create_or_update_secret("acme", secret={"username": "u", "password": "p"}, mount_point=kv2_mount)
    sweep = source.for_sweep()
    start = threading.Barrier(8)
    request_ids: list[str | None] = []

    def read() -> None:
        start.wait()
        request_ids.append(sweep.read(SourceConfig(mount=kv2_mount, path="acme")).source.request_id)

    with capture_logs() as logs:
        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert reads(logs) == 1
    assert len(request_ids) == 8
    assert len(set(request_ids)) == 1


def test_a_failed_read_fails_every_sharer_once(kv2_mount: str, source: VaultSource) -> None:
    """A source that cannot be read fails each secret using it with the error of one attempt."""
    sweep = source.for_sweep()
    errors: list[SourceNotFound] = []

    for password_field in ("password", "token", "secret"):
        with pytest.raises(SourceNotFound) as caught:
            sweep.read(SourceConfig(mount=kv2_mount, path="ghost", password_field=password_field))
        errors.append(caught.value)

    assert errors[0] is errors[1] is errors[2]  # one attempt: the same error object, handed to each
    with pytest.raises(SourceNotFound) as fresh:
        source.for_sweep().read(SourceConfig(mount=kv2_mount, path="ghost"))
    assert fresh.value is not errors[0]


def test_pinned_and_current_versions_are_different_reads(
    root: hvac.Client, kv2_mount: str, source: VaultSource
) -> None:
    """A pinned version and the current version of one path are two sources, read separately."""
    root.secrets.kv.v2.create_or_update_secret(
        "acme", secret={"username": "u", "password": "old"}, mount_point=kv2_mount
    )
    root.secrets.kv.v2.create_or_update_secret(
        "acme", secret={"username": "u", "password": "new"}, mount_point=kv2_mount
    )
    sweep = source.for_sweep()

    with capture_logs() as logs:
        pinned = sweep.read(SourceConfig(mount=kv2_mount, path="acme", version=1))
        current = sweep.read(SourceConfig(mount=kv2_mount, path="acme"))

    assert reads(logs) == 2
    assert (pinned.password, current.password) == ("old", "new")
