"""One Vault read per source per sweep (the engine's ``Once``), with the real VaultSource on OpenBao."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import hvac
import pytest

from service.config import SecretConfig, SourceConfig
from service.engine import Rotator, RotatorOptions
from service.model import Outcome, RegistryCredential, SourceSpec
from service.rotation import SweepRequest
from service.vault import VaultSource
from tests.fakes import NOW, FakeAudit, FakeClock, FakeState, FakeStore, FakeVerifier, RecordingListener

TARGETS = ("eu", "us", "ap")


class CountingSource:
    """The real VaultSource, counting the reads the engine asks of it (a port of ours, not a mock of hvac)."""

    def __init__(self, real: VaultSource) -> None:
        self.real = real
        self.reads: list[str] = []
        self.lock = threading.Lock()

    def read(self, source: SourceSpec) -> RegistryCredential:
        with self.lock:
            self.reads.append(source.describe())
        return self.real.read(source)


@pytest.fixture
def counting(source: VaultSource) -> CountingSource:
    return CountingSource(source)


@pytest.fixture
def rotator(counting: CountingSource) -> Iterator[tuple[Rotator, dict[str, FakeStore]]]:
    clock = FakeClock(NOW)
    names = {f"reg-{n:03d}" for n in range(8)} | {"token-pull"}
    stores = {t: FakeStore(target=t, existing=set(names)) for t in TARGETS}
    engine = Rotator(
        source=counting,
        stores=stores.__getitem__,
        audit=FakeAudit(clock=clock),
        state=FakeState(clock=clock),
        verifier=FakeVerifier(),
        listener=RecordingListener(),
        clock=clock,
        options=RotatorOptions(
            audit_key=b"k" * 32,
            audit_key_id="k1",
            actor="rotator/test@host",
            owner="me",
            lease_ttl=timedelta(minutes=5),
            max_concurrency=16,
            per_target_concurrency=4,
        ),
    )
    yield engine, stores
    engine.close()


def spec(name: str, mount: str, path: str, **source: object) -> object:
    return SecretConfig(
        name=name,
        targets=list(TARGETS),
        registries=["registry.example"],
        source=SourceConfig(mount=mount, path=path, **source),  # type: ignore[arg-type]
    ).spec()


def test_many_secrets_and_targets_sharing_a_source_cause_one_read_per_sweep(
    root: hvac.Client, kv2_mount: str, counting: CountingSource, rotator: tuple[Rotator, dict[str, FakeStore]]
) -> None:
    """Eight secrets on three targets share one source: 24 rotations, one Vault read; the next sweep reads again."""
    engine, stores = rotator
    root.secrets.kv.v2.create_or_update_secret(
        "shared", secret={"username": "u", "password": "p1"}, mount_point=kv2_mount
    )
    secrets = [spec(f"reg-{n:03d}", kv2_mount, "shared") for n in range(8)]
    report = engine.sweep(SweepRequest(secrets=secrets, force=True))  # type: ignore[arg-type]
    assert [r.outcome for r in report.results] == [Outcome.APPLIED] * 24
    assert counting.reads == [f"kv2:{kv2_mount}/shared"]
    assert {r.source_version for r in report.results} == {1}
    root.secrets.kv.v2.create_or_update_secret(
        "shared", secret={"username": "u", "password": "p2"}, mount_point=kv2_mount
    )
    again = engine.sweep(SweepRequest(secrets=secrets, force=True))  # type: ignore[arg-type]
    assert len(counting.reads) == 2
    assert {r.source_version for r in again.results} == {2}
    assert '"password":"p2"' in stores["ap"].values["reg-007"]


def test_another_field_mapping_of_one_path_is_another_source(
    root: hvac.Client, kv2_mount: str, counting: CountingSource, rotator: tuple[Rotator, dict[str, FakeStore]]
) -> None:
    """A source is its location and its field mapping: two mappings of one path are read once each, each its fields."""
    engine, stores = rotator
    root.secrets.kv.v2.create_or_update_secret(
        "shared", secret={"username": "u", "password": "p1", "token": "t1"}, mount_point=kv2_mount
    )
    secrets = [spec("reg-000", kv2_mount, "shared"), spec("token-pull", kv2_mount, "shared", password_field="token")]
    engine.sweep(SweepRequest(secrets=secrets))  # type: ignore[arg-type]
    assert sorted(counting.reads) == [f"kv2:{kv2_mount}/shared"] * 2
    assert '"password":"t1"' in stores["eu"].values["token-pull"]
    assert '"password":"p1"' in stores["eu"].values["reg-000"]


def test_a_failed_read_fails_every_sharer_with_one_attempt(
    kv2_mount: str, counting: CountingSource, rotator: tuple[Rotator, dict[str, FakeStore]]
) -> None:
    """A source that cannot be read fails each pair using it, after one request to Vault."""
    engine, stores = rotator
    secrets = [spec(f"reg-{n:03d}", kv2_mount, "ghost") for n in range(3)]
    report = engine.sweep(SweepRequest(secrets=secrets))  # type: ignore[arg-type]
    assert {(r.outcome, r.error_code) for r in report.results} == {(Outcome.FAILED, "source_not_found")}
    assert len(report.results) == 9
    assert counting.reads == [f"kv2:{kv2_mount}/ghost"]
    assert all(store.calls == [] for store in stores.values())


def test_pinned_and_current_versions_are_different_reads(
    root: hvac.Client, kv2_mount: str, counting: CountingSource, rotator: tuple[Rotator, dict[str, FakeStore]]
) -> None:
    """A pinned version and the current version of one path are two sources, read separately."""
    engine, stores = rotator
    for password in ("old", "new"):
        root.secrets.kv.v2.create_or_update_secret(
            "acme", secret={"username": "u", "password": password}, mount_point=kv2_mount
        )
    secrets = [spec("reg-000", kv2_mount, "acme", version=1), spec("reg-001", kv2_mount, "acme")]
    engine.sweep(SweepRequest(secrets=secrets))  # type: ignore[arg-type]
    assert len(counting.reads) == 2
    assert '"password":"old"' in stores["eu"].values["reg-000"]
    assert '"password":"new"' in stores["eu"].values["reg-001"]
