"""The silent modes of issue 11 not covered by the groups above: 1 (same names) and 7 (schedules that never fire).

Silent modes 2 and 3 are in test_postgres.py, 3 (owner dead) also in test_process.py,
4, 5 and 6 in test_aicore.py.
"""

from __future__ import annotations

from tests.e2e.processes import is_event
from tests.e2e.scene import REGISTRY
from tests.e2e.tomlwriter import to_toml
from tests.faults import steps
from tests.faults.scene import FaultScene

TARGETS = ("tenant-a", "tenant-b", "tenant-c")


def test_silent_1_one_name_on_three_targets_each_with_its_own_source(case: FaultScene) -> None:
    """Silent mode 1: `rotator run` schedules the three pairs named `reg-000`; worker.started counts pairs."""
    case.fault("one secret name on three targets, three sources")
    passwords = {target: steps.pair(case, "reg-000", target=target) for target in TARGETS}
    worker = case.start_worker()
    started = worker.wait_for(is_event("worker.started"), what="worker.started")
    assert started.get("pairs") == len(TARGETS), started
    for target, password in passwords.items():
        steps.holds(case, target, "reg-000", password)
    changed = {target: case.put(steps.path_of(case, "reg-000", target)) for target in TARGETS}
    for target, password in changed.items():
        steps.holds(case, target, "reg-000", password)
    case.check()


def _write_unchecked(case: FaultScene) -> None:
    """The TOML as it stands, without the scene's own load check (the refusal is what the case is about)."""
    case.config_path.write_text(to_toml(case.document()))


def test_silent_7_a_cron_that_never_fires_is_refused(case: FaultScene) -> None:
    """Silent mode 7: `cron = "0 0 30 2 *"` (30 February) makes `check --offline` exit 2 naming the secret."""
    case.fault('cron "0 0 30 2 *" (never fires)')
    steps.pair(case, "feb-thirty")
    case.secrets[-1]["schedule"] = {"cron": "0 0 30 2 *"}
    _write_unchecked(case)
    checked = case.rotator("check", "--offline", expect=None)
    assert checked.code == 2, checked
    assert "feb-thirty" in checked.stderr + checked.stdout
    assert "Traceback" not in checked.stderr
    case.secrets[-1]["schedule"] = {"every": case.every}
    case.write_config()  # a loadable file again, for `audit verify`
    case.check(expect_writes=False)


def test_silent_7_no_registry_host_and_no_registry_field_is_refused(case: FaultScene) -> None:
    """Silent mode 7: `registries = []` without a `registry_field` makes `check --offline` exit 2 naming the secret."""
    case.fault("registries = [] and no registry_field")
    steps.pair(case, "no-hosts")
    case.secrets[-1]["registries"] = []
    _write_unchecked(case)
    checked = case.rotator("check", "--offline", expect=None)
    assert checked.code == 2, checked
    assert "no-hosts" in checked.stderr + checked.stdout
    assert "Traceback" not in checked.stderr
    case.secrets[-1]["registries"] = [REGISTRY]
    case.write_config()  # a loadable file again, for `audit verify`
    case.check(expect_writes=False)
