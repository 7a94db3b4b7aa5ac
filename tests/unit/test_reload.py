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
    return plan_reload(old, new, old_groups=schedule_groups(old), new_groups=schedule_groups(new))


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
