"""Readers for the deployment files: Dockerfile, .dockerignore, docker-compose.yml, Kubernetes manifests.

No Docker engine or cluster runs where the tests run, so the files are checked statically:
these helpers parse them the way Docker, Compose and kubectl read them (for the subset the
repository uses) and the tests state the rules. Small on purpose, standard library and PyYAML.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "docker-compose.yml"
COMPOSE_CONFIG = REPO / "config" / "compose.toml"
KUBERNETES = REPO / "deploy" / "kubernetes"

# --- Dockerfile ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined, with its first line number."""

    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    """One build stage: its base image, its name (``AS``) and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments dropped, backslash continuations joined (as Docker does)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comment lines vanish, even inside a continuation
        if not pending:
            start = number
        pending.append(stripped.removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            instructions.append(_instruction(" ".join(part for part in pending if part), start))
            pending = []
    if pending:
        instructions.append(_instruction(" ".join(pending), start))
    return instructions


def _instruction(text: str, line: int) -> Instruction:
    keyword, _, value = text.partition(" ")
    return Instruction(keyword.upper(), value.strip(), line)


# The instructions in which the builder itself replaces variables (RUN, CMD and the like
# leave them to the shell at run time).
_EXPANDED = {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


def stages(instructions: list[Instruction]) -> list[Stage]:
    """Split into stages; ``ARG`` defaults and ``ENV`` values are expanded as the build would."""
    global_args: dict[str, str] = {}
    found: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append(_stage(expand(instruction.value, global_args)))
        elif not found:
            if instruction.keyword == "ARG":
                global_args.update(arg_defaults(instruction.value))
        else:
            stage = found[-1]
            if instruction.keyword == "ARG":
                stage.variables.update(_redeclared(instruction.value, global_args))
            value = (
                expand(instruction.value, stage.variables) if instruction.keyword in _EXPANDED else instruction.value
            )
            stage.instructions.append(Instruction(instruction.keyword, value, instruction.line))
            if instruction.keyword == "ENV":
                stage.variables.update(env_pairs(value))
    return found


def _stage(value: str) -> Stage:
    words = value.split()
    name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
    return Stage(base=words[0], name=name)


def arg_defaults(value: str) -> dict[str, str]:
    return dict(word.split("=", 1) if "=" in word else (word, "") for word in shlex.split(value))


def _redeclared(value: str, global_args: Mapping[str, str]) -> dict[str, str]:
    """``ARG X`` inside a stage takes the global default; ``ARG X=v`` its own."""
    names = {word.split("=", 1)[0] for word in shlex.split(value)}
    return {name: global_args.get(name, "") for name in names} | {
        name: default for name, default in arg_defaults(value).items() if default
    }


def env_pairs(value: str) -> dict[str, str]:
    """``ENV A=1 B=2`` (or the legacy ``ENV A 1``) as a dict."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(value: str, variables: Mapping[str, str]) -> str:
    """Replace ``$X`` and ``${X}`` that the build knows; leave others (they are run time)."""
    return _VARIABLE.sub(lambda m: variables.get(m[1] or m[2], m[0]), value)


def exec_form(value: str) -> list[str] | None:
    """The argument list of a JSON (exec) form, or None for the shell form."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and parsed and all(isinstance(item, str) for item in parsed):
        return parsed
    return None


def split_options(value: str) -> tuple[dict[str, str], str]:
    """Leading ``--name=value`` flags of COPY or HEALTHCHECK, and the rest."""
    options: dict[str, str] = {}
    rest = value
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, _, setting = flag[2:].partition("=")
        options[name] = setting
        rest = rest.strip()
    return options, rest


def copy_parts(value: str) -> tuple[dict[str, str], list[str], str]:
    """A COPY's options, sources and destination."""
    options, rest = split_options(value)
    words = exec_form(rest) or shlex.split(rest)
    return options, words[:-1], words[-1]


def healthcheck_command(value: str) -> tuple[dict[str, str], list[str] | None]:
    """HEALTHCHECK options and its CMD as an exec-form list (None if shell form or NONE)."""
    options, rest = split_options(value)
    keyword, _, command = rest.partition(" ")
    return options, exec_form(command) if keyword.upper() == "CMD" else None


# --- .dockerignore -------------------------------------------------------------------


def dockerignore_patterns(text: str) -> list[tuple[bool, str]]:
    """(exclude?, pattern) in file order; ``!`` re-includes."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        patterns.append((not negated, pattern))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's patterns: ``*``, ``?`` and ``[...]`` within one segment; ``**`` any number of segments."""
    segments = pattern.split("/")
    out = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("^" + "".join(out) + "$")


def _segment_regex(segment: str) -> str:
    out, index = [], 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in segment[index + 1 :]:
            end = segment.index("]", index + 1)
            body = segment[index + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def dockerignored(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether Docker leaves ``path`` (relative, '/'-separated) out of the build context.

    As Docker's pattern matcher: a pattern matches a path or any of its parent directories,
    and the last matching pattern decides.
    """
    pieces = path.strip("/").split("/")
    candidates = ["/".join(pieces[: n + 1]) for n in range(len(pieces))]
    excluded = False
    for exclude, pattern in patterns:
        regex = _pattern_regex(pattern)
        if any(regex.match(candidate) for candidate in candidates):
            excluded = exclude
    return excluded


# --- docker-compose.yml --------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}`` and ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[4]
        operator, argument = match[2], match[3]
        present = name in environ
        empty = not environ.get(name)
        if operator in (":-", "-"):
            return argument if (empty if operator == ":-" else not present) else environ[name]
        if operator in (":?", "?") and (empty if operator == ":?" else not present):
            raise ValueError(f"compose requires {name}: {argument}")
        return environ.get(name, "")

    return _INTERPOLATION.sub(replace, value)


def interpolate_tree(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [interpolate_tree(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, environ) for key, value in node.items()}
    return node


def load_compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml after YAML merge keys and variable interpolation (empty environment by default)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    return interpolate_tree(raw, environ or {})  # type: ignore[no-any-return]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from the mapping or the ``KEY=VALUE`` list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


@dataclass(frozen=True)
class Mount:
    """One entry of a service's ``volumes``, short syntax."""

    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    found = []
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        found.append(Mount(source, target, "ro" in (mode[0].split(",") if mode else [])))
    return found


def healthcheck_test(service: Mapping[str, Any]) -> list[str] | None:
    """A service's healthcheck command as argv (``CMD`` form), None if absent or disabled."""
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return None
    test = check["test"]
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *argv = test
    return argv if kind == "CMD" else ["/bin/sh", "-c", *argv]


def seconds(duration: str) -> float:
    """Compose durations: ``1m30s``, ``45s``, ``500ms``."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a compose duration: {duration!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


# --- Kubernetes ----------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def manifests() -> list[dict[str, Any]]:
    """Every object of every manifest file (multi-document files allowed), plus generated ConfigMaps."""
    files = [doc for path in manifest_files() for doc in yaml.safe_load_all(path.read_text()) if doc]
    return files + generated_config_maps()


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())  # type: ignore[no-any-return]


def generated_config_maps() -> list[dict[str, Any]]:
    """The ConfigMaps of kustomize's configMapGenerator, before it appends the content hash to the name."""
    maps = []
    for generator in kustomization().get("configMapGenerator", []):
        files = [entry.partition("=") for entry in generator.get("files", [])]
        data = {key if sep else Path(key).name: (KUBERNETES / (path or key)).read_text() for key, sep, path in files}
        labels = generator.get("options", {}).get("labels", {})
        metadata = {"name": generator["name"], **({"labels": labels} if labels else {})}
        maps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return maps


def only(kind: str, objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The single object of a kind."""
    found = [o for o in (objects if objects is not None else manifests()) if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec) of every workload."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield f"CronJob/{obj['metadata']['name']}", obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
