"""bench/once.py's own arithmetic (medians, targets, a healthy run) and bench/stacks.py's attribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.once import Rotator, healthy, summary
from bench.stacks import summarise


def once(wall: float, cpu_ms: float, *, patch: int = 0, **outcomes: int) -> dict[str, Any]:
    return {"wall_s": wall, "cpu_ms_per_rotation": cpu_ms, "patch": patch, "outcomes": outcomes}


def world(first_cpu_ms: list[float], *, idle_pct: float = 0.2, rss: float = 80.0) -> dict[str, Any]:
    runs = [
        {"first": once(10.0 + i, cpu, patch=10, applied=10), "second": once(5.0, 0.5, unchanged=10)}
        for i, cpu in enumerate(first_cpu_ms)
    ]
    runs[0]["sequential"] = {"wall_s_all": 165.0, "statuses": {"202": 10}}
    runs[0]["idle"] = {"cpu_pct_of_core": idle_pct, "rss_mb": rss}
    return {
        "layout": {"rotations": 10},
        "runs": runs,
        "shared": once(9.0, 1.0, patch=10, applied=10),
        "slow": once(12.0, 1.0, patch=10, applied=10),
    }


def test_summary_takes_medians_and_says_which_targets_are_met() -> None:
    """Medians over the runs; 1.5 ms per write, 0.7 per unchanged secret, 15x, idle under 0.5% and 100 MB."""
    result = summary(world([1.0, 2.0, 1.4]))
    assert result["first_cpu_ms_per_rotation"] == 1.4
    assert result["first_wall_s"] == 11.0
    assert result["speedup"] == 15.0
    assert all(result["met"].values())
    slower = world([3.0, 2.0], idle_pct=0.6)
    slower["runs"][0]["sequential"]["wall_s_all"] = 100.0
    slow = summary(slower)
    assert slow["first_cpu_ms_per_rotation"] == 2.5
    assert not slow["met"]["cpu per written rotation <= 1.5 ms"]
    assert not slow["met"]["first sweep >= 15x the sequential baseline"]
    assert not slow["met"]["idle run < 0.5% of a core and < 100 MB RSS"]
    assert not summary(world([1.0], rss=120.0))["met"]["idle run < 0.5% of a core and < 100 MB RSS"]


def test_healthy_needs_every_write_no_second_write_and_accepted_baseline_patches() -> None:
    """A first sweep that did not apply everything, a second that wrote, or a refused baseline PATCH fail the run."""
    assert healthy(world([1.0]))
    bad_first = world([1.0])
    bad_first["shared"] = once(9.0, 1.0, patch=9, applied=9, failed=1)
    assert not healthy(bad_first)
    bad_second = world([1.0])
    bad_second["runs"][0]["second"] = once(5.0, 0.5, patch=1, unchanged=10)
    assert not healthy(bad_second)
    bad_baseline = world([1.0])
    bad_baseline["runs"][0]["sequential"]["statuses"] = {"202": 9, "401": 1}
    assert not healthy(bad_baseline)


def test_profiling_wraps_only_once_in_py_spy(tmp_path: Path) -> None:
    """With a profile directory, `once` runs under py-spy --gil, writing raw stacks there; other commands do not."""
    plain = Rotator(src=tmp_path, config=tmp_path / "r.toml", env={}, work=tmp_path)
    assert plain.command("once", "--json")[1:4] == ["-m", "service", "once"]
    profiled = Rotator(src=tmp_path, config=tmp_path / "r.toml", env={}, work=tmp_path, profile=tmp_path / "p")
    once_command = profiled.command("once")
    assert [Path(once_command[0]).name, *once_command[1:3]] == ["py-spy", "record", "--gil"]
    assert Path(once_command[once_command.index("-o") + 1]).parent == tmp_path / "p"
    assert profiled.command("run")[1:4] == ["-m", "service", "run"]
    assert profiled.command("db", "upgrade")[1:5] == ["-m", "service", "db", "upgrade"]


def test_stacks_are_charged_to_the_library_our_innermost_frame_called(tmp_path: Path) -> None:
    """A stack ending in SQLAlchemy under service/audit counts as sqlalchemy, and under that function of ours."""
    lib = "/x/.venv/lib/python3.11/site-packages"
    raw = tmp_path / "once.txt"
    raw.write_text(
        f"_bootstrap (/usr/lib/python3.11/threading.py:1);save (/w/service/audit/state.py:9);"
        f"execute ({lib}/sqlalchemy/engine/base.py:1);send ({lib}/psycopg/cursor.py:2) 30\n"
        f"_bootstrap (/usr/lib/python3.11/threading.py:1);render (/w/service/dockerconfig.py:5) 10\n"
        f"_bootstrap (/usr/lib/python3.11/threading.py:1);wait (/usr/lib/python3.11/threading.py:3) 5\n"
    )
    total, by_library, by_ours = summarise([raw])
    assert total == 45
    assert by_library == {"sqlalchemy": 30, "ours": 10, "(no frame of ours)": 5}
    assert by_ours["save (service/audit/state.py)"] == 30
