"""The sweep benchmark's own arithmetic: who lives where, the bound, and what counts as a healthy run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sweep import Layout, bounds, healthy
from service.config import Settings, TargetConfig


def settings(tenants: int, **rotation: int) -> Settings:
    targets = {f"tenant-{t:02d}": TargetConfig(service_key={"file": Path("/k.json")}) for t in range(tenants)}
    return Settings(targets=targets, rotation=rotation)


def test_layout_lists_tenant_by_tenant_and_shares_sources() -> None:
    """Secrets are grouped by tenant; with fewer sources than secrets, the same index shares one source."""
    layout = Layout(tenants=2, per_tenant=3, sources=3)
    assert [layout.secret(t, s) for t, s in layout.pairs()] == [
        "reg-t00-s000", "reg-t00-s001", "reg-t00-s002", "reg-t01-s000", "reg-t01-s001", "reg-t01-s002",
    ]  # fmt: skip
    assert layout.source(0, 1) == layout.source(1, 1) == "bench/reg-0001"
    assert len({Layout(2, 3, 6).source(t, s) for t, s in layout.pairs()}) == 6


def test_bound_is_the_slowest_tenant_plus_a_token_fetch() -> None:
    """50 secrets at 20 ms, 4 at a time, plus one token fetch: 0.27 s; the total cap gives its own floor."""
    result = bounds(settings(20, max_concurrency=64, per_target_concurrency=4), Layout(20, 50, 50), 0.020)
    assert round(result["bound_s"], 6) == 0.27
    assert round(result["cap_bound_s"], 6) == round(1000 * 0.020 / 64 + 0.020, 6)


def test_a_target_override_changes_the_bound() -> None:
    """A target allowed fewer requests at once is the slowest one."""
    config = settings(2, per_target_concurrency=4)
    slow = config.model_copy(
        update={"targets": {**config.targets, "tenant-01": TargetConfig(service_key={"env": "K"}, max_concurrency=2)}}
    )
    assert round(bounds(slow, Layout(2, 10, 10), 0.1)["bound_s"], 6) == round(10 / 2 * 0.1 + 0.1, 6)


def run(label: str, patches: int, **outcomes: int) -> dict[str, Any]:
    return {"label": label, "outcomes": outcomes, "emulator": {"patch": patches}}


def test_healthy_run_needs_every_write_and_an_intact_chain() -> None:
    """All applied where a write was due, all unchanged where not, PATCHes counted by the emulator, chain verified."""
    good = {
        "layout": {"tenants": 2, "secrets_per_tenant": 5},
        "chain_verified": True,
        "sweeps": [run("(a) first", 10, applied=10), run("(b) second", 0, unchanged=10)],
    }
    assert healthy(good)
    assert not healthy(good | {"chain_verified": False})
    assert not healthy(good | {"sweeps": [run("(a) first", 9, applied=10)]})
    assert not healthy(good | {"sweeps": [run("(a) first", 10, applied=9, failed=1)]})
    assert not healthy(good | {"sweeps": [run("(b) second", 1, unchanged=10)]})
