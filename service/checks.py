"""What ``rotator check`` reports: config problems, a summary, and reachability."""

from __future__ import annotations

from datetime import UTC, datetime

from service.aicore.servicekey import ServiceKeyError, cleartext_issues, parse_service_key
from service.config import Settings, local_ref_issues, short_interval_issues, unknown_env_issues
from service.errors import ConfigIssue
from service.transport import cleartext_rule, database_tls_warning


def local_issues(settings: Settings, *, structure_only: bool = False) -> list[ConfigIssue]:
    """Problems found without the network: unknown variables, transport, referenced files and variables, service keys.

    ``structure_only`` stops after the structure (already validated by loading), the unknown
    variables and the transport rules: a CI lint where the secret files and variables are not mounted.
    """
    issues = unknown_env_issues(settings) + short_interval_issues(settings) + transport_warnings(settings)
    if structure_only:
        return issues
    issues += local_ref_issues(settings)
    broken = {issue.location for issue in issues if issue.severity == "error"}
    for name, target in settings.targets.items():
        where = f"targets.{name}.service_key"
        if target.service_key.file is None or where in broken:
            continue
        try:
            key = parse_service_key(target.service_key.file.read_bytes())
        except (ServiceKeyError, OSError) as e:
            issues.append(ConfigIssue(where, f"{target.service_key.file}: {e}"))
            continue
        issues += cleartext_issues(key, target=name, insecure_http=target.insecure_http)
    issues += [
        ConfigIssue(f"targets.{name}.ca_cert", f"CA bundle {target.ca_cert} does not exist or is not a file")
        for name, target in settings.targets.items()
        if target.ca_cert is not None and not target.ca_cert.is_file()
    ]
    return issues


def transport_warnings(settings: Settings) -> list[ConfigIssue]:
    """Endpoints of the configuration allowed over cleartext, and a database reached without TLS.

    Service keys are read at run time (they may live in Vault): their URLs are checked when
    a target's client is built, and by ``check`` where the key is a readable file.
    """
    rules = [
        (
            "vault.address",
            cleartext_rule(
                settings.vault.address, insecure_http=settings.vault.insecure_http, flag="vault.insecure_http"
            ),
        )
    ]
    for index, secret in enumerate(settings.secrets):
        flag = f"secrets[{index}] ({secret.name}).insecure_http"
        rules += [
            (
                f"secrets[{index}] ({secret.name}).registries",
                cleartext_rule(host, insecure_http=secret.insecure_http, flag=flag),
            )
            for host in secret.registries
        ]
    issues = [ConfigIssue(where, rule.warning, "warning") for where, rule in rules if rule.warning]
    database = database_tls_warning(settings.database.url)
    if database:
        issues.append(ConfigIssue("database.url", database, "warning"))
    return issues


def summary(settings: Settings, now: datetime | None = None) -> str:
    """A short human summary: targets, secrets with their source, schedule and next run."""
    from service.scheduler import next_runs

    at = now or datetime.now(UTC)
    lines = [f"{len(settings.targets)} target(s), {len(settings.secrets)} secret(s); vault {settings.vault.address}"]
    for name, target in sorted(settings.targets.items()):
        lines.append(f"  target {name}: service key from {target.service_key.describe()}")
    for secret in settings.secrets:
        schedule = settings.schedule_of(secret)
        upcoming = next_runs(schedule, secret.name, at)
        when = upcoming[0].strftime("%Y-%m-%dT%H:%M:%SZ") if upcoming else "never"
        lines.append(
            f"  secret {secret.name}: {secret.source.describe()} -> {', '.join(secret.targets)}; "
            f"{schedule.describe()}; next run {when}"
        )
    return "\n".join(lines)


def reachability(settings: Settings) -> int:
    """Reach Vault, every target's XSUAA and the database; 0 when all answer, 3 otherwise."""
    from service.app import probe_dependencies

    return probe_dependencies(settings)
