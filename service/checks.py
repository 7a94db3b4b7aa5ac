"""What ``rotator check`` reports: config problems, a summary, and reachability."""

from __future__ import annotations

from datetime import UTC, datetime

from service.aicore.servicekey import ServiceKeyError, parse_service_key
from service.config import Settings, local_ref_issues, short_interval_issues
from service.errors import ConfigIssue


def local_issues(settings: Settings) -> list[ConfigIssue]:
    """Problems found without the network: referenced files, variables, service keys."""
    issues = local_ref_issues(settings)
    broken = {issue.location for issue in issues if issue.severity == "error"}
    for name, target in settings.targets.items():
        where = f"targets.{name}.service_key"
        if target.service_key.file is None or where in broken:
            continue
        try:
            parse_service_key(target.service_key.file.read_bytes())
        except (ServiceKeyError, OSError) as e:
            issues.append(ConfigIssue(where, f"{target.service_key.file}: {e}"))
    return issues + short_interval_issues(settings)


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
