"""pyproject.toml declares every library service/ imports, each with an upper bound."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"service", "__future__"}


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> dict[str, str]:
    parsed = (re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?(.*)", req) for req in requirements)
    return {normalised(m.group(1)): m.group(2).strip() for m in parsed if m}


def test_every_imported_library_is_declared() -> None:
    """Each third-party module service/ imports comes from a distribution pyproject declares."""
    runtime = declared(PYPROJECT["project"]["dependencies"])
    extras = declared([r for group in PYPROJECT["project"]["optional-dependencies"].values() for r in group])
    owners = packages_distributions()
    missing = {
        module: owners.get(module)
        for module in imported_top_levels()
        if not {normalised(d) for d in owners.get(module, [module])} & (set(runtime) | set(extras))
    }
    assert missing == {}
    assert "requests" in runtime


def test_runtime_dependencies_have_an_upper_bound() -> None:
    """Every runtime dependency is capped below its next major version."""
    unbounded = [name for name, spec in declared(PYPROJECT["project"]["dependencies"]).items() if "<" not in spec]
    assert unbounded == []
