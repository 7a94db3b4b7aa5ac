"""Audit-key rotation: a new HMAC key does not rewrite credentials applied under a previous one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.cli import main
from service.dockerconfig import fingerprint
from service.engine import Rotator, RotatorOptions
from service.model import DockerConfigJson, EventType, Fingerprint, Outcome, RotationKey, RotationState
from service.rotation import Action, AuditKeys, SweepRequest, decide_rendering
from tests.fakes import FakeAudit, FakeClock, FakeSource, FakeState, FakeStore, FakeVerifier, RecordingListener
from tests.unit.test_sweep import secret

OLD, NEW = b"o" * 32, b"n" * 32
CONFIG = DockerConfigJson('{"auths":{"r.example":{"auth":"dTpw","password":"p","username":"u"}}}')
KEY = RotationKey("eu", "acme-registry")
ID = "api.ai.example.com sb-client"


def state_with(fp: Fingerprint | None, identity: str | None = ID) -> RotationState:
    return RotationState(key=KEY, fingerprint=fp, target_identity=identity)


def test_unchanged_under_a_previous_key_is_not_written() -> None:
    """The state's k0 fingerprint equals k0's fingerprint of the new rendering: unchanged, and k0's fingerprint kept."""
    old = fingerprint(CONFIG, key=OLD, key_id="k0")
    decision = decide_rendering(
        state_with(old), CONFIG, keys=AuditKeys("k1", NEW, {"k0": OLD}), identity=ID, force=False
    )
    assert decision.action is Action.UNCHANGED
    assert decision.fingerprint == old


def test_a_real_change_is_written_under_the_new_key() -> None:
    """Another rendering than the one applied under k0 is a write, fingerprinted with k1."""
    old = fingerprint(DockerConfigJson('{"auths":{}}'), key=OLD, key_id="k0")
    decision = decide_rendering(
        state_with(old), CONFIG, keys=AuditKeys("k1", NEW, {"k0": OLD}), identity=ID, force=False
    )
    assert decision.action is Action.WRITE
    assert decision.fingerprint == fingerprint(CONFIG, key=NEW, key_id="k1")


def test_without_the_previous_key_everything_looks_changed() -> None:
    """The problem the setting solves: a new key_id alone makes an unchanged credential a write."""
    old = fingerprint(CONFIG, key=OLD, key_id="k0")
    decision = decide_rendering(state_with(old), CONFIG, keys=AuditKeys("k1", NEW), identity=ID, force=False)
    assert decision.action is Action.WRITE


def test_a_previous_key_under_a_reused_id_does_not_match_another_key() -> None:
    """A recorded k0 fingerprint is only compared with k0's key: a different key under the same id is a write."""
    old = fingerprint(CONFIG, key=OLD, key_id="k0")
    decision = decide_rendering(
        state_with(old), CONFIG, keys=AuditKeys("k1", NEW, {"k0": NEW}), identity=ID, force=False
    )
    assert decision.action is Action.WRITE


def test_a_repointed_target_is_written_under_the_new_key() -> None:
    """Unchanged under k0 but the target now names another tenant: a write (REPOINT) with k1's fingerprint."""
    old = fingerprint(CONFIG, key=OLD, key_id="k0")
    state = state_with(old, identity="api.other.example.com sb-client")
    decision = decide_rendering(state, CONFIG, keys=AuditKeys("k1", NEW, {"k0": OLD}), identity=ID, force=False)
    assert decision.action is Action.REPOINT
    assert decision.fingerprint == fingerprint(CONFIG, key=NEW, key_id="k1")


def test_force_writes_under_the_new_key() -> None:
    """--force on a credential unchanged under k0 writes it, with k1's fingerprint."""
    old = fingerprint(CONFIG, key=OLD, key_id="k0")
    decision = decide_rendering(
        state_with(old), CONFIG, keys=AuditKeys("k1", NEW, {"k0": OLD}), identity=ID, force=True
    )
    assert decision.action is Action.FORCE
    assert decision.fingerprint.key_id == "k1"


@pytest.mark.parametrize("stored", [False, True])
def test_no_state_or_no_fingerprint_is_a_write(stored: bool) -> None:
    """No state, or one without a fingerprint (also how a stored text that does not parse reads), is a write."""
    decision = decide_rendering(
        state_with(None) if stored else None,
        CONFIG,
        keys=AuditKeys("k1", NEW, {"k0": OLD}),
        identity=ID,
        force=False,
    )
    assert decision.action is Action.WRITE


def test_current_key_behaves_as_before() -> None:
    """Under the current key: same fingerprint is unchanged, nothing else involved."""
    new = fingerprint(CONFIG, key=NEW, key_id="k1")
    decision = decide_rendering(
        state_with(new), CONFIG, keys=AuditKeys("k1", NEW, {"k0": OLD}), identity=ID, force=False
    )
    assert (decision.action, decision.fingerprint) == (Action.UNCHANGED, new)


class Fakes:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.source = FakeSource(clock=self.clock)
        self.source.put("registries/acme", "robot", "first-token")
        self.store = FakeStore(target="eu", existing={"acme-registry"})
        self.audit = FakeAudit(clock=self.clock)
        self.state = FakeState(clock=self.clock)

    def sweep(self, key_id: str, key: bytes, previous: dict[str, bytes] | None = None):  # type: ignore[no-untyped-def]
        rotator = Rotator(
            source=self.source,
            stores={"eu": self.store}.__getitem__,
            audit=self.audit,
            state=self.state,
            verifier=FakeVerifier(),
            listener=RecordingListener(),
            clock=self.clock,
            options=RotatorOptions(
                audit_key=key,
                audit_key_id=key_id,
                previous_audit_keys=previous or {},
                actor="rotator/test@host",
                owner="me",
                lease_ttl=timedelta(minutes=5),
                max_concurrency=4,
                per_target_concurrency=2,
                schedule_next=lambda s, now: now + timedelta(hours=6),
            ),
        )
        try:
            self.clock.advance(timedelta(hours=7))
            (result,) = rotator.sweep(SweepRequest(secrets=[secret()])).results
            return result
        finally:
            rotator.close()


def test_a_sweep_under_a_new_key_writes_nothing_unchanged_then_the_next_change_under_it() -> None:
    """k0 applies; k1 with previous k0 checks without PATCH or audit row; a new token is written under k1."""
    fakes = Fakes()
    first = fakes.sweep("k0", OLD)
    assert first.outcome is Outcome.APPLIED
    rows = len(fakes.audit.records)

    checked = fakes.sweep("k1", NEW, {"k0": OLD})
    assert checked.outcome is Outcome.UNCHANGED
    assert fakes.store.calls == [("PATCH", "acme-registry")]
    assert len(fakes.audit.records) == rows
    state = fakes.state.states[KEY]
    assert state.fingerprint == first.fingerprint, "the state keeps the k0 fingerprint the audit trail knows"
    assert state.last_checked_at == fakes.clock.now

    fakes.source.put("registries/acme", "robot", "second-token")
    changed = fakes.sweep("k1", NEW, {"k0": OLD})
    assert changed.outcome is Outcome.APPLIED
    assert changed.fingerprint is not None
    assert changed.fingerprint.key_id == "k1"
    assert changed.previous_fingerprint == first.fingerprint
    intent = fakes.audit.events(EventType.INTENT)[-1]
    assert intent.previous_fingerprint == first.fingerprint
    assert fakes.state.states[KEY].fingerprint == changed.fingerprint


def test_previous_key_with_the_current_id_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """audit.previous_keys repeating audit.key_id is one line naming the key, exit 2."""
    path = tmp_path / "rotator.toml"
    path.write_text(
        '[audit]\nkey = {env = "K1"}\nkey_id = "k1"\nprevious_keys = [{key_id = "k1", key = {env = "K0"}}]\n'
    )
    assert main(["check", "--offline", "-c", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path}: audit: previous_keys repeats the current key_id 'k1'; give each key its own id"]


def test_previous_keys_repeating_an_id_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two previous keys under one id are refused, naming the id."""
    path = tmp_path / "rotator.toml"
    path.write_text(
        '[audit]\nkey = {env = "K2"}\nkey_id = "k2"\n'
        'previous_keys = [{key_id = "k0", key = {env = "K0"}}, {key_id = "k0", key = {env = "K1"}}]\n'
    )
    assert main(["check", "--offline", "-c", str(path)]) == 2
    assert "audit: previous_keys repeats key_id 'k0'" in capsys.readouterr().err


def test_previous_key_references_are_checked_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unset variable behind a previous key is named with its index and id."""
    monkeypatch.setenv("K1", "x" * 32)
    monkeypatch.setenv("VAULT_TOKEN", "t")
    monkeypatch.delenv("K0", raising=False)
    path = tmp_path / "rotator.toml"
    path.write_text(
        '[audit]\nkey = {env = "K1"}\nkey_id = "k1"\nprevious_keys = [{key_id = "k0", key = {env = "K0"}}]\n'
    )
    assert main(["check", "--offline", "-c", str(path)]) == 2
    assert "audit.previous_keys[0] (k0).key: environment variable K0 is not set" in capsys.readouterr().err
