"""config/rotator.example.toml documents every settings key in its own table."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from service.config import SecretRef, Settings, VaultRef

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "rotator.example.toml"
HEADER = re.compile(r"^#?\s*\[\[?([A-Za-z0-9_.\-]+)\]\]?\s*$")
INLINE_ONLY = {"audit.previous_keys"}  # a list of inline tables inside [audit]


def sections(text: str) -> dict[str, str]:
    """Table name (targets.<name> as targets.*) -> the text under its headers, commented headers included."""
    found: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        match = HEADER.match(line.strip())
        if match:
            name = match.group(1)
            current = "targets.*" if name.startswith("targets.") else name
            found.setdefault(current, [])
            continue
        found[current].append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def models_in(annotation: object) -> list[tuple[str, type[BaseModel]]]:
    """The settings models a field holds: ("table", M), ("each", M) for dict/list items."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]
    if origin in (list, dict):
        return [("each", m) for _, m in models_in(typing.get_args(annotation)[-1])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [] if annotation in (SecretRef, VaultRef) else [("table", annotation)]
    return []


def tables_of(model: type[BaseModel], table: str, found: dict[type[BaseModel], list[str]]) -> None:
    """Every table each model is written in (ScheduleConfig: [defaults.schedule] and [secrets.schedule])."""
    found.setdefault(model, []).append(table)
    for name, field in model.model_fields.items():
        key = f"{table}.{name}".lstrip(".")
        for _, sub in models_in(field.annotation):
            if key in INLINE_ONLY:
                found.setdefault(sub, []).append(table)
            else:
                tables_of(sub, "targets.*" if key == "targets" else key, found)


def missing(model: type[BaseModel], table: str, text: dict[str, str]) -> list[str]:
    """``table: key`` for each key documented in none of its model's tables (a sub-table counts as its key)."""
    found: dict[type[BaseModel], list[str]] = {}
    tables_of(model, table, found)
    problems = []
    for each, tables in found.items():
        for name, field in each.model_fields.items():
            as_table = [f"{t}.{name}".lstrip(".") for t in tables if models_in(field.annotation)]
            documented = any(
                re.search(rf"(?m)^\s*#?\s*(?:{re.escape(name)}\s*=|.*\b{re.escape(name)}\s*=)", text.get(t, ""))
                for t in tables
            ) or any(t in text or any(k.startswith((f"{t}.", f"{t}*")) for k in text) for t in as_table)
            if not documented:
                problems.append(f"{tables[0] or '(top)'}: {name}")
    return problems


def test_every_settings_key_is_documented_in_its_table() -> None:
    """Each field of each settings model appears, set or commented, under its own [table] in the example."""
    text = sections(EXAMPLE.read_text())
    assert missing(Settings, "", text) == []


def test_the_check_finds_a_key_in_the_wrong_table() -> None:
    """A key documented only under another table counts as missing, so a pass means something."""
    text = sections("[vault]\naddress = 1\n[http]\ninsecure_http = false\n")
    from service.config import VaultConfig

    assert "vault: insecure_http" in missing(VaultConfig, "vault", text)
