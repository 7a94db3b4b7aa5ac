"""What a SIGHUP reload changes: jobs added, replaced and removed, and the sections that need a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.config import Settings
from service.reload import plan_reload
from service.worker import schedule_groups

TARGETS = {"eu": {"service_key": {"file": Path("/k/eu.json")}}, "us": {"service_key": {"file": Path("/k/us.json")}}}


def settings(*secrets: dict[str, Any], **sections: Any) -> Settings:
    return Settings(targets=TARGETS, secrets=list(secrets), defaults={"schedule": {"every": "6h"}}, **sections)


def entry(name: str, *targets: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "targets": list(targets or ["eu"]), "source": {"path": f"p/{name}"}, **extra}


def plan(old: Settings, new: Settings):  # type: ignore[no-untyped-def]
    return plan_reload(old, new, old_groups=schedule_groups(old.specs()), new_groups=schedule_groups(new.specs()))


def test_new_changed_and_removed_secrets() -> None:
    """A new name is added, a changed entry replaced, a removed name's job removed; pairs are counted."""
    old = settings(entry("keep-pull"), entry("change-pull"), entry("gone-pull"))
    new = settings(entry("keep-pull"), entry("change-pull", "eu", "us"), entry("new-pull"))
    result = plan(old, new)
    assert result.add == ("rotate:new-pull",)
    assert result.replace == ("rotate:change-pull",)
    assert result.remove == ("rotate:gone-pull",)
    assert (result.pairs_added, result.pairs_removed) == (2, 1)
    assert result.restart_needed == ()


def test_a_running_workers_settings_without_their_secrets_plan_the_same() -> None:
    """The worker keeps its settings ``without_secrets`` (the specs are in its groups): the plan is unchanged."""
    old = settings(entry("keep-pull"), entry("change-pull"), entry("gone-pull"))
    new = settings(entry("keep-pull"), entry("change-pull", "eu", "us"), entry("new-pull"))
    running = plan_reload(
        old.without_secrets(), new, old_groups=schedule_groups(old.specs()), new_groups=schedule_groups(new.specs())
    )
    assert running == plan(old, new)
    assert (running.pairs_added, running.pairs_removed) == (2, 1)


def test_a_per_secret_window_change_replaces_its_job() -> None:
    """A window is part of the entry's spec: changing it replaces the job, as changing its source does."""
    window = {"kind": "deny", "cron": "0 8 * * 1-5", "duration": "10h"}
    old = settings(entry("a-pull"))
    new = settings(entry("a-pull", windows=[window]))
    assert plan(old, new).replace == ("rotate:a-pull",)
    [spec] = new.specs()
    assert [w.describe() for w in spec.windows] == ["deny '0 8 * * 1-5' for 10:00:00 (UTC)"]


def test_a_changed_default_schedule_replaces_the_jobs_that_use_it() -> None:
    """Entries unchanged but [defaults.schedule] changed: their jobs get the new trigger."""
    old = settings(entry("a-pull"))
    new = Settings(targets=TARGETS, secrets=[entry("a-pull")], defaults={"schedule": {"every": "1h"}})
    assert plan(old, new).replace == ("rotate:a-pull",)


def test_sections_read_at_start_are_reported_not_applied() -> None:
    """A new Vault address or concurrency needs a restart: the plan names those sections."""
    old = settings(entry("a-pull"))
    new = settings(entry("a-pull"), vault={"address": "https://vault.example.com"}, rotation={"max_concurrency": 8})
    result = plan(old, new)
    assert result.restart_needed == ("vault", "rotation")
    assert not result.changes_anything


def test_a_changed_target_is_named() -> None:
    """A target whose service key reference changed is rebuilt at its next use."""
    old = settings(entry("a-pull"))
    new = Settings(
        targets={**TARGETS, "eu": {"service_key": {"file": Path("/k/eu-new.json")}}},
        secrets=[entry("a-pull")],
        defaults={"schedule": {"every": "6h"}},
    )
    assert plan(old, new).targets_changed == ("eu",)
