"""The Dockerfile: non-root, exec-form entry, a health check, migrations in the image, nothing secret."""

from __future__ import annotations

import re
import tomllib
from urllib.parse import urlsplit

import pytest

from service.cli import build_parser
from tests.deploy_files import (
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    Stage,
    copy_parts,
    dockerignore_patterns,
    dockerignored,
    env_pairs,
    exec_form,
    healthcheck_command,
    parse_dockerfile,
    stages,
)

PROBE_PORT = 9464
SECRET_NAME = re.compile(r"(?i)pass(word)?|secret|token|credential|private|api_?key|hmac")


@pytest.fixture(scope="module")
def all_stages() -> list[Stage]:
    return stages(parse_dockerfile(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def final(all_stages: list[Stage]) -> Stage:
    return all_stages[-1]


def test_parser_joins_continuations_and_drops_comments() -> None:
    """The reader joins backslash continuations, skips comment lines inside them, and expands ARGs."""
    text = "ARG V=3.12\nFROM python:${V}-slim AS b\n# c\nENV A=1 \\\n    # inside\n    B=2\nRUN echo $A\n"
    (stage,) = stages(parse_dockerfile(text))
    assert stage.base == "python:3.12-slim"
    assert stage.name == "b"
    assert [(i.keyword, i.value) for i in stage.instructions] == [("ENV", "A=1 B=2"), ("RUN", "echo $A")]
    assert stage.variables == {"A": "1", "B": "2"}


def test_final_stage_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    """The image's user is a numeric uid:gid other than 0, set before the entry point and never switched back."""
    users = final.all("USER")
    assert users, "the final stage sets no USER: the container would run as root"
    uid, _, gid = users[-1].value.partition(":")
    assert uid.isdigit(), "runAsNonRoot can only verify a numeric USER"
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    entry = final.last("ENTRYPOINT")
    assert entry is not None
    assert users[-1].line < entry.line


def test_entrypoint_and_cmd_are_exec_form_and_start_the_worker(final: Stage) -> None:
    """ENTRYPOINT and CMD are JSON lists (python is PID 1, no shell), and together they are `rotator run`."""
    entry, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entry is not None
    assert cmd is not None
    entry_argv, cmd_argv = exec_form(entry.value), exec_form(cmd.value)
    assert entry_argv == ["rotator"], "exec form of the console script, no shell wrapper"
    assert cmd_argv is not None
    assert build_parser().parse_args(cmd_argv).command == "run"


def test_entrypoint_is_the_projects_console_script_on_path(final: Stage) -> None:
    """`rotator` is the project's console script, and the venv holding it comes first on PATH."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rotator"] == "service.cli:main"
    assert final.variables.get("PATH", "").split(":")[0] == f"{_venv(final)}/bin"


def test_healthcheck_fetches_livez_on_the_probe_port(final: Stage) -> None:
    """HEALTHCHECK runs python (no curl in slim images) in exec form against /livez on port 9464."""
    check = final.last("HEALTHCHECK")
    assert check is not None, "no HEALTHCHECK"
    options, argv = healthcheck_command(check.value)
    assert argv is not None, "HEALTHCHECK must be CMD in exec form"
    assert argv[:2] == ["python", "-c"]
    (url,) = re.findall(r"https?://[^'\"]+", argv[2])
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", PROBE_PORT, "/livez")
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)


def test_probe_port_is_exposed(final: Stage) -> None:
    """The image documents the probe port with EXPOSE."""
    exposed = {word.split("/")[0] for i in final.all("EXPOSE") for word in i.value.split()}
    assert str(PROBE_PORT) in exposed


def test_python_writes_no_bytecode_and_does_not_buffer_output(final: Stage) -> None:
    """PYTHONDONTWRITEBYTECODE=1 (a read-only root filesystem) and PYTHONUNBUFFERED=1 (logs reach docker at once)."""
    assert final.variables.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert final.variables.get("PYTHONUNBUFFERED") == "1"


def test_base_images_are_pinned_slim_python(all_stages: list[Stage]) -> None:
    """Every stage starts from a python:<major.minor>-slim image, never an unpinned or `latest` tag."""
    for stage in all_stages:
        if stage.base in {s.name for s in all_stages}:
            continue
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.base), stage.base


def test_runtime_copies_only_the_builders_environment(all_stages: list[Stage], final: Stage) -> None:
    """Two stages: the builder installs the package from the repo; the runtime takes its venv, not the sources."""
    builder = all_stages[0]
    assert builder.name is not None
    assert len(all_stages) >= 2
    run = " ".join(i.value for i in builder.all("RUN"))
    assert re.search(r"pip (wheel|install)\b[^&]* \.( |$)", run), "the builder installs the project itself"
    froms = [copy_parts(i.value) for i in final.all("COPY") if "from" in copy_parts(i.value)[0]]
    assert froms == [({"from": builder.name}, ["/opt/venv"], "/opt/venv")]
    assert not any(source.startswith("service") for i in final.all("COPY") for source in copy_parts(i.value)[1])


def test_dependencies_install_from_the_lock_file_with_hashes(all_stages: list[Stage]) -> None:
    """The builder installs what uv.lock pins, hash-checked, with a pinned uv; the project itself adds no dependency."""
    builder = all_stages[0]
    run = " ".join(i.value for i in builder.all("RUN"))
    assert "uv export --frozen --no-dev --no-emit-project" in run
    assert "--require-hashes" in run
    assert "pip install --no-deps ." in run
    assert "uv==${UV_VERSION}" in run
    assert re.fullmatch(r"\d+\.\d+\.\d+", builder.variables.get("UV_VERSION", "")), "pin uv"
    lock_copied = next(i.line for i in builder.all("COPY") if "uv.lock" in copy_parts(i.value)[1])
    sources_copied = next(i.line for i in builder.all("COPY") if "service/" in copy_parts(i.value)[1])
    assert lock_copied < sources_copied, "dependencies first: a source change keeps the dependency layer cached"


def test_copy_sources_exist_and_reach_the_build_context(all_stages: list[Stage]) -> None:
    """Every file or directory copied from the build context exists in the repo and .dockerignore lets it through."""
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text())
    sources = [s for stage in all_stages for i in stage.all("COPY") for s in _context_sources(i.value)]
    assert "migrations/" in sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
        assert files, f"COPY {source}: nothing to copy"
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert not dockerignored(relative, patterns), f"{relative} is excluded by .dockerignore"


def test_migrations_sit_beside_the_installed_service_package(final: Stage) -> None:
    """Alembic's scripts land in site-packages/migrations, beside `service`, as in the repo (migrate.py's lookup)."""
    version = re.match(r"python:(3\.\d+)", final.base)
    assert version is not None
    site_packages = f"{_venv(final)}/lib/python{version[1]}/site-packages"
    destinations = [copy_parts(i.value)[2].rstrip("/") for i in final.all("COPY") if "migrations/" in i.value]
    assert destinations == [f"{site_packages}/migrations"]


def test_build_fails_when_the_migrations_are_not_found(final: Stage) -> None:
    """A RUN step after the migrations are copied asks the installed code for the head revision."""
    copied = next(i.line for i in final.all("COPY") if "migrations/" in i.value)
    checks = [i for i in final.all("RUN") if i.line > copied and "migrate import head" in i.value]
    assert checks, "no build-time check that service.audit.migrate finds the migrations"
    assert exec_form(checks[0].value) is not None


def test_no_secret_is_baked_into_the_image(all_stages: list[Stage]) -> None:
    """No ENV, ARG or LABEL named like a secret carries a value, and no key or .env file is copied."""
    for stage in all_stages:
        for instruction in stage.instructions:
            if instruction.keyword in ("ENV", "ARG"):
                for name, value in env_pairs(instruction.value).items():
                    assert not (SECRET_NAME.search(name) and value), f"line {instruction.line}: {name} is set"
            if instruction.keyword in ("COPY", "ADD"):
                for source in copy_parts(instruction.value)[1]:
                    assert not re.search(r"\.(pem|key|p12|env)$|secret|token", source), source
    assert not [i for stage in all_stages for i in stage.all("ADD")], "ADD fetches URLs and unpacks: use COPY"


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/HEAD", "service/__pycache__/cli.cpython-312.pyc", ".pytest_cache/v/x", ".env"],
)
def test_dockerignore_keeps_environments_vcs_and_caches_out(path: str) -> None:
    """Virtual environments, .git, caches and local env files never enter the build context."""
    assert dockerignored(path, dockerignore_patterns(DOCKERIGNORE.read_text()))


def test_dockerignore_reader_follows_dockers_rules() -> None:
    """Patterns match a path or its parents, the last match decides, and ** spans directories."""
    patterns = dockerignore_patterns("*\n!src/\n**/__pycache__\n!src/keep/__pycache__\n")
    assert dockerignored("notes.txt", patterns)
    assert not dockerignored("src/a/b.py", patterns)
    assert dockerignored("src/a/__pycache__/b.pyc", patterns)
    assert not dockerignored("src/keep/__pycache__/b.pyc", patterns)


def _venv(final: Stage) -> str:
    (_, sources, destination) = next(copy_parts(i.value) for i in final.all("COPY") if "from" in i.value)
    assert sources == [destination]
    return destination


def _context_sources(value: str) -> list[str]:
    options, sources, _ = copy_parts(value)
    return [] if "from" in options else sources
