"""deploy/kubernetes: the restricted security context, probes, config, Secrets by reference, the migration Job."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.config import Settings, load_settings, secret_refs
from tests.deploy_files import (
    DOCKERFILE,
    KUBERNETES,
    exec_form,
    kustomization,
    manifest_files,
    manifests,
    only,
    parse_dockerfile,
    pod_specs,
    stages,
)

KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "Job",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
TMP = "/tmp"  # noqa: S108 (the pods' emptyDir mount point, not a file of ours)
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what a pod must listen on, checked, not bound)
OBJECTS = manifests()
WORKLOADS = dict(pod_specs(OBJECTS))


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def restricted_problems(pod: dict[str, Any]) -> list[str]:
    """What breaks the "restricted" Pod Security Standard (plus a read-only root filesystem)."""
    problems = [f"host namespace {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)]
    problems += [f"volume {v['name']} type" for v in pod.get("volumes", []) if not set(v) - {"name"} <= ALLOWED_VOLUMES]
    pod_context = pod.get("securityContext", {})
    for container in containers(pod):
        problems += [f"{container['name']}: {p}" for p in _container_problems(pod_context, container)]
    return problems


def _container_problems(pod_context: dict[str, Any], container: dict[str, Any]) -> list[str]:
    context = container.get("securityContext", {})
    merged = pod_context | context
    problems = []
    if merged.get("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if merged.get("runAsUser") == 0:
        problems.append("runs as uid 0")
    if merged.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("no RuntimeDefault seccomp profile")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if context.get("privileged"):
        problems.append("privileged")
    capabilities = context.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problems.append("capabilities not dropped (ALL)")
    if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
        problems.append("capabilities added")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is writable")
    return problems


def image_uid() -> int:
    user = stages(parse_dockerfile(DOCKERFILE.read_text()))[-1].last("USER")
    assert user is not None
    return int(user.value.split(":")[0])


def image_entrypoint() -> list[str]:
    entry = stages(parse_dockerfile(DOCKERFILE.read_text()))[-1].last("ENTRYPOINT")
    assert entry is not None
    argv = exec_form(entry.value)
    assert argv is not None
    return argv


def config_toml() -> str:
    return str(only("ConfigMap", OBJECTS)["data"]["rotator.toml"])


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment; values from Secrets or fields become placeholders."""
    return {item["name"]: item.get("value", f"placeholder-{item['name'].lower()}") for item in container.get("env", [])}


def plain_settings(tmp_path: Path) -> Settings:
    """The ConfigMap's TOML with no environment overrides."""
    path = tmp_path / "plain.toml"
    path.write_text(config_toml())
    return load_settings(path)


def settings_in(container: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The ConfigMap's TOML as this container loads it: from a file, with the container's environment."""
    path = tmp_path / "rotator.toml"
    path.write_text(config_toml())
    for name, value in container_env(container).items():
        monkeypatch.setenv(name, value)
    return load_settings(path)


def worker() -> dict[str, Any]:
    return only("Deployment", OBJECTS)


def worker_pod() -> dict[str, Any]:
    return worker()["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def worker_container() -> dict[str, Any]:
    (container,) = worker_pod()["containers"]
    return container  # type: ignore[no-any-return]


def test_kustomization_lists_every_manifest_and_only_those() -> None:
    """kustomization.yaml names each manifest file of the folder once, and each named file exists."""
    resources = kustomization()["resources"]
    assert len(resources) == len(set(resources))
    assert sorted(resources) == [p.name for p in manifest_files()]
    assert all((KUBERNETES / name).is_file() for name in resources)


def test_objects_are_well_formed_and_expected() -> None:
    """Every object has apiVersion, kind and a name; together they are the kinds the issue asks for."""
    for obj in OBJECTS:
        assert obj.get("apiVersion")
        assert obj["metadata"].get("name")
        assert "namespace" not in obj["metadata"] or obj["kind"] == "Namespace", "kustomize sets the namespace"
    assert {obj["kind"] for obj in OBJECTS} == KINDS


def test_namespace_enforces_the_restricted_standard() -> None:
    """The namespace makes the API server refuse pods that break the restricted Pod Security Standard."""
    namespace = only("Namespace", OBJECTS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert kustomization()["namespace"] == namespace["metadata"]["name"]


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_pods_meet_the_restricted_pod_security_standard(workload: str) -> None:
    """Non-root, RuntimeDefault seccomp, no escalation, every capability dropped, a read-only root filesystem."""
    assert restricted_problems(WORKLOADS[workload]) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("containers", 0, "securityContext", "allowPrivilegeEscalation"), True, "allowPrivilegeEscalation"),
        (("containers", 0, "securityContext", "capabilities", "add"), ["SYS_ADMIN"], "capabilities added"),
        (("containers", 0, "securityContext", "readOnlyRootFilesystem"), False, "root filesystem"),
        (("containers", 0, "securityContext", "runAsNonRoot"), False, "runAsNonRoot"),
        (("securityContext", "seccompProfile", "type"), "Unconfined", "seccomp"),
        (("hostNetwork",), True, "hostNetwork"),
        (("volumes", 0), {"name": "host", "hostPath": {"path": "/"}}, "volume host type"),
    ],
)
def test_restricted_check_catches_each_violation(path: tuple[Any, ...], value: Any, problem: str) -> None:
    """The checker above reports each kind of violation, so a passing check means something."""
    pod = copy.deepcopy(worker_pod())
    node = pod
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(problem in found for found in restricted_problems(pod))


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_pods_run_as_the_images_user(workload: str) -> None:
    """runAsUser and runAsGroup are the image's numeric USER."""
    context = WORKLOADS[workload]["securityContext"]
    assert context["runAsUser"] == image_uid()
    assert context["runAsGroup"] == image_uid()


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_containers_have_requests_and_limits(workload: str) -> None:
    """Every container requests and limits CPU and memory."""
    for container in containers(WORKLOADS[workload]):
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), f"{container['name']}: {kind}"


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_tmp_is_a_writable_empty_dir(workload: str) -> None:
    """The only writable place is /tmp, an emptyDir with a size limit."""
    pod = WORKLOADS[workload]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in containers(pod):
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == TMP]
        assert volumes[mount["name"]]["emptyDir"]["sizeLimit"]
        writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
        assert writable == [TMP]


@pytest.mark.parametrize(("workload", "command"), [("Deployment/rotator", "run"), ("Job/rotator-migrate", "db")])
def test_commands_parse(workload: str, command: str) -> None:
    """Each container's command line (the image's entry point plus args) is one the CLI accepts."""
    (container,) = WORKLOADS[workload]["containers"]
    argv = container.get("command", image_entrypoint()) + container["args"]
    assert argv[0] == "rotator"
    args = build_parser().parse_args(argv[1:])
    assert args.command == command
    assert command != "db" or args.db_command == "upgrade"


def test_job_runs_the_workers_image() -> None:
    """The migration runs the same image as the worker, and kustomize's image override names it."""
    (job_container,) = WORKLOADS["Job/rotator-migrate"]["containers"]
    image = worker_container()["image"]
    assert job_container["image"] == image
    assert image.rsplit(":", 1)[0] in {entry["name"] for entry in kustomization()["images"]}


def test_probes_reach_the_configured_listen_port(tmp_path: Path) -> None:
    """Liveness asks /livez and readiness /readyz on the container port that http.listen opens on all interfaces."""
    container = worker_container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    host, _, listen_port = plain_settings(tmp_path).http.listen.rpartition(":")
    assert host == ALL_INTERFACES
    expected = {"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/livez"}
    for probe, path in expected.items():
        check = container[probe]["httpGet"]
        assert check["path"] == path
        assert ports.get(check["port"], check["port"]) == int(listen_port)


def test_termination_grace_outlasts_shutdown_grace(tmp_path: Path) -> None:
    """The kubelet waits longer than rotation.shutdown_grace before SIGKILL, so outcomes get written."""
    grace = plain_settings(tmp_path).rotation.shutdown_grace.total_seconds()
    assert worker_pod()["terminationGracePeriodSeconds"] > grace


def test_config_map_loads_in_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the worker's environment the ConfigMap's TOML is valid, logs in with Kubernetes auth, references resolve."""
    container = worker_container()
    settings = settings_in(container, tmp_path, monkeypatch)
    assert settings.vault.auth.method == "kubernetes"
    assert settings.vault.auth.role
    env = container_env(container)
    mounted = [PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]]
    for where, ref in secret_refs(settings):
        if ref.env is not None:
            assert ref.env in env, f"{where}: {ref.env} is not in the container's env"
        if ref.file is not None:
            assert any(PurePosixPath(ref.file).is_relative_to(m) for m in mounted), f"{where}: {ref.file}"
    assert settings.audit.key.vault is not None, "the audit key comes from Vault"
    assert settings.instance == "placeholder-rotator_instance", "ROTATOR_INSTANCE reaches the settings"


def test_config_is_mounted_where_rotator_config_points() -> None:
    """ROTATOR_CONFIG is the ConfigMap's key inside the directory the ConfigMap is mounted on."""
    config_map = only("ConfigMap", OBJECTS)
    for workload, pod in WORKLOADS.items():
        (container,) = pod["containers"]
        volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == config_map["metadata"]["name"])
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        expected = PurePosixPath(mount["mountPath"]) / next(iter(config_map["data"]))
        assert container_env(container)["ROTATOR_CONFIG"] == str(expected), workload


def test_vault_login_uses_a_projected_token_for_vault_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The JWT the rotator presents is a projected service account token with audience `vault`, no API token."""
    settings = settings_in(worker_container(), tmp_path, monkeypatch)
    jwt = settings.vault.auth.jwt_ref
    assert jwt is not None
    assert jwt.file is not None
    path = PurePosixPath(jwt.file)
    (mount,) = [m for m in worker_container()["volumeMounts"] if path.is_relative_to(m["mountPath"])]
    volume = next(v for v in worker_pod()["volumes"] if v["name"] == mount["name"])
    (source,) = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == "vault"
    assert PurePosixPath(mount["mountPath"]) / token["path"] == path
    assert worker_pod()["automountServiceAccountToken"] is False
    assert only("ServiceAccount", OBJECTS)["automountServiceAccountToken"] is False
    assert worker_pod()["serviceAccountName"] == only("ServiceAccount", OBJECTS)["metadata"]["name"]


def projected_secrets(pod: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Secret name -> (projected volume, its source) for every Secret a pod mounts through a projected volume."""
    return {
        source["secret"]["name"]: (volume, source)
        for volume in pod["volumes"]
        for source in volume.get("projected", {}).get("sources", [])
        if "secret" in source
    }


def mount_of(container: dict[str, Any], volume: dict[str, Any]) -> dict[str, Any]:
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    return mount


def test_service_keys_are_files_of_a_projected_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each target's service key is <target>.json of a projected Secret, readable by the pod's group only."""
    settings = settings_in(worker_container(), tmp_path, monkeypatch)
    volume, source = projected_secrets(worker_pod())["rotator-service-keys"]
    mount = mount_of(worker_container(), volume)
    assert mount["readOnly"] is True
    assert "items" not in source["secret"], "every key of the Secret is a target's file"
    mode = volume["projected"]["defaultMode"]
    assert mode & 0o007 == 0, "others can read the service keys"
    assert mode & 0o040, "fsGroup's members (the rotator) cannot read them"
    assert worker_pod()["securityContext"]["fsGroup"] == image_uid()
    for name, target in settings.targets.items():
        assert target.service_key.file == Path(mount["mountPath"]) / f"{name}.json"


@pytest.mark.parametrize(
    ("workload", "secret"), [("Deployment/rotator", "rotator-db"), ("Job/rotator-migrate", "rotator-db-owner")]
)
def test_database_password_is_a_projected_secret_file(
    workload: str, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """database.password names a file of a projected Secret (the owner's in the Job); no Secret reaches the env."""
    pod = WORKLOADS[workload]
    (container,) = pod["containers"]
    password = settings_in(container, tmp_path, monkeypatch).database.password
    assert password is not None
    assert password.file is not None
    volume, source = projected_secrets(pod)[secret]
    (item,) = source["secret"]["items"]
    assert PurePosixPath(mount_of(container, volume)["mountPath"]) / item["path"] == PurePosixPath(password.file)
    assert volume["projected"]["defaultMode"] & 0o007 == 0
    assert pod["securityContext"]["fsGroup"] == image_uid()
    assert not [e for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]


def test_migration_job_connects_as_the_schema_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Job overrides the database role (DDL needs the owner); the worker keeps the application role."""
    worker_url = plain_settings(tmp_path).database.url
    (job,) = WORKLOADS["Job/rotator-migrate"]["containers"]
    job_url = settings_in(job, tmp_path, monkeypatch).database.url
    role = re.compile(r"://([^@]+)@")
    assert role.findall(job_url) != role.findall(worker_url)
    assert job_url.split("@", 1)[1] == worker_url.split("@", 1)[1], "same server and database"


def test_no_secret_values_in_the_manifests() -> None:
    """No Secret object is committed; each referenced Secret comes with the command that creates it."""
    assert not [obj for obj in OBJECTS if obj["kind"] == "Secret"]
    referenced = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for pod in WORKLOADS.values()
        for c in containers(pod)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    } | {v["secret"]["secretName"] for pod in WORKLOADS.values() for v in pod["volumes"] if "secret" in v}
    referenced |= {name for pod in WORKLOADS.values() for name in projected_secrets(pod)}
    comments = "\n".join(p.read_text() for p in manifest_files())
    assert referenced
    for name in referenced:
        assert re.search(rf"#.*create secret generic {re.escape(name)} ", comments), name


def test_service_and_budget_select_the_worker_pods() -> None:
    """The Service and the PodDisruptionBudget select the Deployment's pods; the Service targets the probe port."""
    labels = worker()["spec"]["template"]["metadata"]["labels"]
    assert worker()["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = only("Service", OBJECTS)
    assert service["spec"]["selector"].items() <= labels.items()
    assert only("PodDisruptionBudget", OBJECTS)["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in worker_container()["ports"]}
    assert only("PodDisruptionBudget", OBJECTS)["spec"]["minAvailable"] < worker()["spec"]["replicas"]


def test_budget_lets_unhealthy_pods_be_evicted() -> None:
    """A crash-looping pod cannot block a node drain: unhealthyPodEvictionPolicy is AlwaysAllow."""
    assert only("PodDisruptionBudget", OBJECTS)["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_deployment_is_replicated_with_rolling_updates() -> None:
    """Several replicas (they share work through Postgres leases), replaced one at a time with none missing."""
    spec = worker()["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# --- NetworkPolicy ---------------------------------------------------------------------


def policy() -> dict[str, Any]:
    return only("NetworkPolicy", OBJECTS)


def egress_ports() -> set[tuple[str, int]]:
    return {(port["protocol"], port["port"]) for rule in policy()["spec"]["egress"] for port in rule["ports"]}


def url_port(url: str, default: int) -> int:
    match = re.match(r"^[a-z+]+://(?:[^@/]*@)?[^:/?]+(?::(\d+))?", url)
    assert match is not None, url
    return int(match.group(1) or default)


def test_network_policy_selects_every_rotator_pod() -> None:
    """The policy covers the worker and the migration Job, for both directions (deny by default)."""
    selector = policy()["spec"]["podSelector"]["matchLabels"]
    for workload in ("Deployment", "Job"):
        labels = only(workload, OBJECTS)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), workload
    assert set(policy()["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_network_policy_admits_only_the_metrics_port() -> None:
    """Ingress is the container's http port (metrics, status) and nothing else."""
    ports = {(p["protocol"], p["port"]) for rule in policy()["spec"]["ingress"] for p in rule["ports"]}
    (http,) = worker_container()["ports"]
    assert ports == {("TCP", http["containerPort"])}
    assert all(rule.get("from") for rule in policy()["spec"]["ingress"]), "ingress names who may scrape"


def test_network_policy_lets_the_rotator_reach_its_dependencies(tmp_path: Path) -> None:
    """Egress: DNS over UDP and TCP, the config's Vault and PostgreSQL ports, HTTPS for AI Core and registries."""
    settings = plain_settings(tmp_path)
    assert {("UDP", 53), ("TCP", 53), ("TCP", 443)} <= egress_ports()
    assert ("TCP", url_port(settings.vault.address, 8200)) in egress_ports()
    assert ("TCP", url_port(settings.database.url, 5432)) in egress_ports()
    assert all(rule.get("to") for rule in policy()["spec"]["egress"]), "every egress rule names a destination"


def test_network_policy_check_notices_a_missing_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving the database to another port makes the egress check above fail."""
    monkeypatch.setenv("ROTATOR_DATABASE__URL", "postgresql+psycopg://rotator_app@db.example:6432/rotator")
    assert ("TCP", url_port(settings_in(worker_container(), tmp_path, monkeypatch).database.url, 5432)) == ("TCP", 6432)
    assert ("TCP", 6432) not in egress_ports()


# --- the generated ConfigMap -------------------------------------------------------------


KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: `kubectl kustomize` not run")


def render(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=True)  # type: ignore[list-item]
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_config_map_is_generated_with_a_content_hash() -> None:
    """The ConfigMap comes from configMapGenerator (no hand-written file), with the hash suffix left on."""
    (generator,) = kustomization()["configMapGenerator"]
    assert generator["name"] == "rotator-config"
    assert generator.get("options", {}).get("disableNameSuffixHash") is not True
    assert kustomization().get("generatorOptions", {}).get("disableNameSuffixHash") is not True
    files = [yaml.safe_load(p.read_text()) for p in manifest_files()]
    assert not [doc for doc in files if doc and doc["kind"] == "ConfigMap"]


@needs_kubectl
def test_a_config_change_renames_the_config_map_everywhere(tmp_path: Path) -> None:
    """`kubectl kustomize`: the ConfigMap's name carries a hash, both pods mount that name, an edit changes it."""
    folder = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, folder)

    def names() -> tuple[str, set[str]]:
        objects = render(folder)
        generated = only("ConfigMap", objects)["metadata"]["name"]
        mounted = {v["configMap"]["name"] for _, pod in pod_specs(objects) for v in pod["volumes"] if "configMap" in v}
        return generated, mounted

    before, mounted = names()
    assert re.fullmatch(r"rotator-config-[a-z0-9]{10}", before)
    assert mounted == {before}
    config = folder / "rotator.toml"
    config.write_text(config.read_text().replace('level = "info"', 'level = "warning"'))
    after, mounted = names()
    assert after != before
    assert mounted == {after}
