"""docker-compose.yml: the seven services, their start order, health checks, hardening, limits and configuration."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from service.cli import build_parser
from service.config import Settings, load_settings, secret_refs
from tests.deploy_files import (
    COMPOSE_CONFIG,
    DOCKERFILE,
    REPO,
    Mount,
    environment,
    healthcheck_command,
    healthcheck_test,
    interpolate,
    load_compose,
    mounts,
    parse_dockerfile,
    seconds,
    stages,
)

DEPENDENCIES = {
    "migrate": {"postgres": "service_healthy"},
    "seed": {"vault": "service_healthy"},
    "grants": {"migrate": "service_completed_successfully"},
    "rotator": {
        "postgres": "service_healthy",
        "vault": "service_healthy",
        "aicore": "service_healthy",
        "migrate": "service_completed_successfully",
        "grants": "service_completed_successfully",
        "seed": "service_completed_successfully",
    },
}
TMP = "/tmp"  # noqa: S108 (the containers' tmpfs mount point, not a file of ours)
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what a container must listen on, checked, not bound)
# The services that run the image built from ./Dockerfile, and the command each runs.
ROTATOR_IMAGE = {"aicore": ("emulator", "aicore"), "migrate": ("db", "upgrade"), "rotator": ("run", None)}
# Every service of that image, including `grants`, which runs a mounted script with its Python.
HARDENED = sorted({*ROTATOR_IMAGE, "grants"})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def image() -> dict[str, Any]:
    final = stages(parse_dockerfile(DOCKERFILE.read_text()))[-1]
    user = final.last("USER")
    check = final.last("HEALTHCHECK")
    assert user is not None
    assert check is not None
    return {
        "user": user.value,
        "config": final.variables["ROTATOR_CONFIG"],
        "health": healthcheck_command(check.value)[1],
    }


def settings_with(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """config/compose.toml as the container reads it: with that container's environment applied."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(COMPOSE_CONFIG)


def test_services_are_the_stack_the_issue_names(services: dict[str, Any]) -> None:
    """PostgreSQL, a Vault dev server, the AI Core emulator, the migration, the grants, the seed and the rotator."""
    assert set(services) == {"postgres", "vault", "aicore", "migrate", "grants", "seed", "rotator"}


@pytest.mark.parametrize("service", sorted(DEPENDENCIES))
def test_start_order_waits_for_health_and_for_one_shots(services: dict[str, Any], service: str) -> None:
    """depends_on uses conditions: servers must be healthy, one-shot steps must have succeeded."""
    declared = {name: spec["condition"] for name, spec in services[service]["depends_on"].items()}
    assert declared == DEPENDENCIES[service]


def test_every_healthy_dependency_has_a_health_check(services: dict[str, Any]) -> None:
    """A `service_healthy` condition on a service without a health check would never be met."""
    for spec in services.values():
        for name, dependency in (spec.get("depends_on") or {}).items():
            if dependency["condition"] == "service_healthy":
                assert healthcheck_test(services[name]), f"{name} has no health check"


def test_every_completed_dependency_is_a_one_shot(services: dict[str, Any]) -> None:
    """A `service_completed_successfully` dependency exits and is not restarted."""
    for spec in services.values():
        for name, dependency in (spec.get("depends_on") or {}).items():
            if dependency["condition"] == "service_completed_successfully":
                assert services[name].get("restart") == "no", name


def test_postgres_17_is_checked_with_pg_isready_over_tcp(services: dict[str, Any]) -> None:
    """pg_isready asks over TCP: during initdb the image's temporary server listens on the socket only."""
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:17"
    test = healthcheck_test(postgres)
    assert test is not None
    assert test[0] == "pg_isready"
    assert "--host=127.0.0.1" in test
    env = environment(postgres)
    assert f"--username={env['POSTGRES_USER']}" in test


def test_vault_dev_server_is_checked_with_its_cli(services: dict[str, Any]) -> None:
    """The Vault dev server has a fixed root token, listens for the other containers and answers `vault status`."""
    vault = services["vault"]
    assert vault["image"].startswith(("hashicorp/vault:1.18", "openbao/openbao"))
    env = environment(vault)
    assert env["VAULT_DEV_ROOT_TOKEN_ID"]
    assert env["VAULT_DEV_LISTEN_ADDRESS"].startswith("0.0.0.0:")
    assert healthcheck_test(vault) == ["vault", "status"]
    assert urlsplit(env["VAULT_ADDR"]).hostname == "127.0.0.1"


def test_seed_runs_the_mounted_script_with_the_vault_images_cli(services: dict[str, Any]) -> None:
    """`seed` is the Vault image running deploy/compose/seed-vault.sh, mounted read-only from the repo."""
    seed = services["seed"]
    assert seed["image"] == services["vault"]["image"]
    shell, script = seed["entrypoint"]
    assert shell == "/bin/sh"
    (mount,) = [m for m in mounts(seed) if m.target == script]
    assert mount.read_only
    assert (REPO / mount.source).resolve() == REPO / "deploy" / "compose" / "seed-vault.sh"


@pytest.mark.parametrize("service", sorted(ROTATOR_IMAGE))
def test_rotator_commands_parse(services: dict[str, Any], service: str) -> None:
    """Each command given to the image (its entry point is `rotator`) is one the CLI accepts."""
    spec = services[service]
    assert spec["image"] == services["rotator"]["image"]
    assert spec["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    args = build_parser().parse_args(spec["command"])
    command, sub = ROTATOR_IMAGE[service]
    assert args.command == command
    assert sub is None or sub in (getattr(args, "db_command", None), getattr(args, "emulator", None))


@pytest.mark.parametrize("service", HARDENED)
def test_rotator_image_runs_hardened(services: dict[str, Any], image: dict[str, Any], service: str) -> None:
    """Read-only root, a tmpfs /tmp, the image's non-root user, no capabilities, no privilege escalation."""
    spec = services[service]
    assert spec["read_only"] is True
    assert any(entry.split(":")[0] == TMP for entry in spec["tmpfs"])
    assert spec["user"] == image["user"]
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert not spec.get("privileged")


def test_bind_mounts_exist_in_the_repo_and_are_read_only(services: dict[str, Any]) -> None:
    """Every file mounted from the checkout exists, stays inside it, and is mounted read-only."""
    binds = [m for spec in services.values() for m in mounts(spec) if m.is_bind]
    assert binds
    for mount in binds:
        path = (REPO / mount.source).resolve()
        assert path.is_relative_to(REPO), mount.source
        assert path.exists(), f"{mount.source} does not exist"
        assert mount.read_only, f"{mount.source} is mounted writable"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    """Each named volume a service mounts is declared at the top level (and none is left unused)."""
    used = {m.source for spec in compose["services"].values() for m in mounts(spec) if not m.is_bind}
    assert used == set(compose["volumes"])


def test_service_keys_pass_from_the_emulator_to_the_rotator(services: dict[str, Any]) -> None:
    """The emulator writes its keys into a volume the rotator mounts read-only, at the path the config names."""
    command = services["aicore"]["command"]
    key_dir = command[command.index("--service-key-dir") + 1]
    writer = _mount_at(services["aicore"], key_dir)
    reader = _mount_at(services["rotator"], key_dir)
    assert writer.source == reader.source
    assert not writer.read_only
    assert reader.read_only
    settings = load_settings(COMPOSE_CONFIG)
    for name, target in settings.targets.items():
        assert target.service_key.file == Path(key_dir) / f"{name}.json"


def test_key_directory_belongs_to_the_image_user(services: dict[str, Any], image: dict[str, Any]) -> None:
    """The image creates the key directory owned by its user, so a fresh volume mounted there is writable by it."""
    final = stages(parse_dockerfile(DOCKERFILE.read_text()))[-1]
    created = {
        path: f"{owner}:{group}"
        for run in final.all("RUN")
        for owner, group, path in re.findall(r"--owner=(\d+) --group=(\d+) --mode=0?[0-7]+ (\S+)", run.value)
    }
    command = services["aicore"]["command"]
    assert created.get(command[command.index("--service-key-dir") + 1]) == image["user"]


def test_emulator_listens_on_its_service_name(services: dict[str, Any]) -> None:
    """The emulator binds to the `aicore` name, so the URLs in the keys it writes reach it from other containers."""
    command = services["aicore"]["command"]
    assert command[command.index("--host") + 1] == "aicore"
    assert healthcheck_test(services["aicore"]) is not None


@pytest.mark.parametrize("service", ["migrate", "rotator"])
def test_config_is_mounted_where_the_image_looks(services: dict[str, Any], image: dict[str, Any], service: str) -> None:
    """config/compose.toml is mounted read-only at the image's ROTATOR_CONFIG."""
    mount = _mount_at(services[service], image["config"])
    assert (REPO / mount.source).resolve() == COMPOSE_CONFIG
    assert mount.read_only


def test_compose_config_loads_in_the_rotator_container(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the rotator's environment, the config is valid and every reference resolves inside its container."""
    env = environment(services["rotator"])
    settings = settings_with(env, monkeypatch)
    targets = [PurePosixPath(m.target) for m in mounts(services["rotator"])]
    kinds = set()
    for where, ref in secret_refs(settings):
        if ref.env is not None:
            kinds.add("env")
            assert env.get(ref.env), f"{where}: {ref.env} is not set for the rotator"
        if ref.file is not None:
            kinds.add("file")
            assert any(PurePosixPath(ref.file).is_relative_to(t) for t in targets), f"{where}: {ref.file} not mounted"
        if ref.vault is not None:
            kinds.add("vault")
    assert kinds == {"env", "file", "vault"}
    assert settings.audit.key.vault is not None, "the audit key comes from Vault"
    assert settings.vault.auth.method == "token"


def test_migration_gets_the_database_password(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """`migrate` reads the same config and has the environment variable its database password refers to."""
    env = environment(services["migrate"])
    settings = settings_with(env, monkeypatch)
    assert settings.database.password is not None
    assert settings.database.password.env is not None
    assert env[settings.database.password.env]


def test_config_names_the_compose_services(services: dict[str, Any]) -> None:
    """The database URL and the Vault address point at the postgres and vault services, with their database and port."""
    settings = load_settings(COMPOSE_CONFIG)
    database = urlsplit(settings.database.url)
    postgres = environment(services["postgres"])
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    vault = urlsplit(settings.vault.address)
    listen_port = int(environment(services["vault"])["VAULT_DEV_LISTEN_ADDRESS"].rsplit(":", 1)[1])
    assert (vault.hostname, vault.port) == ("vault", listen_port)
    assert urlsplit(environment(services["seed"])["VAULT_ADDR"]).netloc == vault.netloc


def test_rotator_connects_as_the_granted_app_role(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The rotator's role is the one `grants` creates, not the owner; migrate and grants act as the owner."""
    owner = environment(services["postgres"])["POSTGRES_USER"]
    grants = environment(services["grants"])
    rotator_url = urlsplit(settings_with(environment(services["rotator"]), monkeypatch).database.url)
    assert rotator_url.username == grants["APP_ROLE"] != owner
    migrate_url = urlsplit(settings_with(environment(services["migrate"]), monkeypatch).database.url)
    assert migrate_url.username == owner == grants["PGUSER"]
    assert (
        migrate_url.netloc.split("@")[1] == rotator_url.netloc.split("@")[1] == f"{grants['PGHOST']}:{grants['PGPORT']}"
    )
    assert migrate_url.path == rotator_url.path == f"/{grants['PGDATABASE']}"


def test_grants_step_runs_the_mounted_script_with_the_images_python(services: dict[str, Any]) -> None:
    """`grants` is the rotator image running deploy/compose/apply-grants.py, mounted read-only."""
    grants = services["grants"]
    assert grants["image"] == services["rotator"]["image"]
    python, script = grants["entrypoint"]
    assert python == "python"
    (mount,) = [m for m in mounts(grants) if m.target == script]
    assert mount.read_only
    assert (REPO / mount.source).resolve() == REPO / "deploy" / "compose" / "apply-grants.py"


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {
            "ROTATOR_DB_PASSWORD": "db-x",
            "ROTATOR_DB_OWNER_PASSWORD": "owner-w",
            "VAULT_DEV_ROOT_TOKEN": "root-y",
            "ROTATOR_VAULT_TOKEN": "app-z",
        },
    ],
    ids=["defaults", "overridden"],
)
def test_passwords_and_tokens_agree_between_services(environ: dict[str, str]) -> None:
    """Each shared value reaches both ends, defaulted or set; the rotator never holds the owner password or root."""
    env = {name: environment(spec) for name, spec in load_compose(environ)["services"].items()}
    owner = env["postgres"]["POSTGRES_PASSWORD"]
    assert owner == env["migrate"]["ROTATOR_DB_PASSWORD"] == env["grants"]["PGPASSWORD"]
    assert env["grants"]["APP_ROLE_PASSWORD"] == env["rotator"]["ROTATOR_DB_PASSWORD"] != owner
    assert owner not in env["rotator"].values()
    assert env["vault"]["VAULT_DEV_ROOT_TOKEN_ID"] == env["seed"]["VAULT_TOKEN"]
    assert env["seed"]["ROTATOR_VAULT_TOKEN"] == env["rotator"]["VAULT_TOKEN"]
    assert env["rotator"]["VAULT_TOKEN"] != env["seed"]["VAULT_TOKEN"]
    for name, value in environ.items():
        assert value in {v for service in env.values() for v in service.values()}, name


def test_every_service_has_resource_limits(services: dict[str, Any]) -> None:
    """Each container has a CPU, memory and process ceiling."""
    for name, spec in services.items():
        limits = spec.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory", "pids"} <= set(limits), name
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[MG]", limits["memory"]), name


def test_rotator_health_check_is_the_images_on_the_configured_port(
    services: dict[str, Any], image: dict[str, Any]
) -> None:
    """The rotator's health check is the image's /livez check, and the config listens on that port on all interfaces."""
    assert healthcheck_test(services["rotator"]) == image["health"]
    host, _, port = load_settings(COMPOSE_CONFIG).http.listen.rpartition(":")
    assert host == ALL_INTERFACES
    assert f"127.0.0.1:{port}/livez" in image["health"][2]
    assert services["rotator"]["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_stop_grace_period_outlasts_shutdown_grace(services: dict[str, Any]) -> None:
    """Docker waits longer than rotation.shutdown_grace before SIGKILL, so outcomes get written."""
    grace = load_settings(COMPOSE_CONFIG).rotation.shutdown_grace.total_seconds()
    assert seconds(services["rotator"]["stop_grace_period"]) > grace


def test_published_ports_bind_to_loopback_only(services: dict[str, Any]) -> None:
    """Ports published on the host listen on 127.0.0.1, not on every interface."""
    published = [entry for spec in services.values() for entry in spec.get("ports", [])]
    assert published
    for entry in published:
        assert entry.startswith("127.0.0.1:"), entry


def test_interpolation_reader_follows_compose_rules() -> None:
    """`:-` defaults on unset or empty, `-` only on unset, `:?` refuses, `$$` is a literal dollar."""
    assert interpolate("${A:-d}/${B-d}/${C}/$$x", {"B": ""}) == "d///$x"
    assert interpolate("${A:-d}", {"A": "set"}) == "set"
    with pytest.raises(ValueError, match="compose requires A"):
        interpolate("${A:?set A}", {})


def test_healthchecks_are_exec_form(services: dict[str, Any]) -> None:
    """Health checks run their program directly (CMD), not through a shell string."""
    for name, spec in services.items():
        check = spec.get("healthcheck")
        if check and not check.get("disable"):
            assert isinstance(check["test"], list), name
            assert check["test"][0] == "CMD", name


def _mount_at(service: dict[str, Any], target: str) -> Mount:
    (mount,) = [m for m in mounts(service) if m.target == target]
    return mount
