"""deploy/prometheus: the alert rules are valid, unit-tested by promtool, and use only metrics we export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from service.metrics import Metrics

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "prometheus" / "rotator-alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "rotator-alerts.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package `prometheus`; .ci/run installs it)"
)


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def exported_families() -> set[str]:
    metrics = Metrics()
    metrics.vault_token_expires_at(1.0)
    return {metric.name for metric in metrics.registry.collect()}


def test_every_rule_uses_a_metric_we_export() -> None:
    """Each alert expression names only rotator metrics the service exports."""
    known = {name.removesuffix("_total") for name in exported_families()}
    for rule in rules():
        used = set(re.findall(r"\b(rotator_[a-z_]+)", str(rule["expr"])))
        unknown = {name for name in used if name.removesuffix("_total") not in known}
        assert not unknown, f"{rule['alert']} uses {unknown}"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    """Alertmanager routes on severity; the summary names the pair."""
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]  # type: ignore[index]
        assert rule["annotations"]["summary"], rule["alert"]  # type: ignore[index]


def test_every_alert_is_unit_tested() -> None:
    """The promtool test file exercises every alert of the rules file."""
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert {str(rule["alert"]) for rule in rules()} <= tested


def test_readme_points_at_the_rules_file() -> None:
    """The README links the shipped rules instead of a copy that can drift."""
    readme = (REPO / "README.md").read_text()
    assert "deploy/prometheus/rotator-alerts.yml" in readme
    assert "- alert: " not in readme


@needs_promtool
def test_promtool_check_rules() -> None:
    """`promtool check rules` accepts the file."""
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)  # type: ignore[list-item]
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_test_rules() -> None:
    """`promtool test rules`: every alert fires on the series meant to trigger it, and only those."""
    result = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
