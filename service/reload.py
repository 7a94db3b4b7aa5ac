"""SIGHUP: what a new configuration changes for a running worker (pure).

The worker re-reads and validates the file, then applies what can change while it runs:
secrets, their schedules and targets (service keys are looked up again). Sections that
shape the process itself (Vault, the database, the audit key, the HTTP port, concurrency)
need a restart; a reload that changes them says so and keeps the running values.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.config import Settings
from service.model import RotationKey, SecretSpec, spec_pairs

# Sections read once at start-up: a change is reported, not applied.
RESTART_SECTIONS = ("vault", "database", "audit", "rotation", "http", "log", "instance")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadPlan:
    """Jobs to add, replace and remove, pair counts, and the sections that need a restart."""

    add: tuple[str, ...]
    replace: tuple[str, ...]
    remove: tuple[str, ...]
    pairs_added: int
    pairs_removed: int
    restart_needed: tuple[str, ...]
    targets_changed: tuple[str, ...]

    @property
    def changes_anything(self) -> bool:
        return bool(self.add or self.replace or self.remove or self.targets_changed)


def plan_reload(
    old: Settings,
    new: Settings,
    *,
    old_groups: Mapping[str, Sequence[SecretSpec]],
    new_groups: Mapping[str, Sequence[SecretSpec]],
) -> ReloadPlan:
    """Compare two validated configurations and the job groups built from each.

    The pairs come from the groups: a running worker's ``old`` settings have no ``[[secrets]]``
    (``Settings.without_secrets``).
    """
    old_pairs, new_pairs = _pairs(old_groups), _pairs(new_groups)

    def changed(job: str) -> bool:  # its entries, or the schedule they use (resolved: maybe [defaults.schedule])
        return list(old_groups[job]) != list(new_groups[job])

    return ReloadPlan(
        add=tuple(job for job in new_groups if job not in old_groups),
        replace=tuple(job for job in new_groups if job in old_groups and changed(job)),
        remove=tuple(job for job in old_groups if job not in new_groups),
        pairs_added=len(new_pairs - old_pairs),
        pairs_removed=len(old_pairs - new_pairs),
        restart_needed=tuple(name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)),
        targets_changed=tuple(
            name
            for name in sorted(set(old.targets) | set(new.targets))
            if old.targets.get(name) != new.targets.get(name)
        ),
    )


def _pairs(groups: Mapping[str, Sequence[SecretSpec]]) -> set[RotationKey]:
    return set(spec_pairs(itertools.chain.from_iterable(groups.values())))
