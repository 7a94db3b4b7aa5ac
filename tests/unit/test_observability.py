"""Health endpoints, metrics and the canonical rotation log line."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import httpx
import pytest

from service import logs
from service.errors import AuditUnavailable
from service.http import HealthServer, Probes
from service.metrics import Metrics
from service.model import ChainHead, Fingerprint, Outcome, RotationKey, RotationState, Trigger
from service.observe import Observer
from service.report import render_results
from service.rotation import RotationResult, SweepReport
from service.status import render_table, status_rows
from tests.fakes import NOW
from tests.unit.test_sweep import secret

FP_TEXT = "hmac-sha256:k1:" + "ab" * 32
FP = Fingerprint.parse(FP_TEXT)


def result(outcome: Outcome = Outcome.APPLIED, **kw: object) -> RotationResult:
    fields: dict[str, object] = {
        "fingerprint": FP,
        "source_version": 3,
        "http_status": 202,
        "request_id": "req-1",
        "vault_request_id": "vault-req-1",
        "duration_ms": 120,
    }
    fields.update(kw)
    return RotationResult(
        key=RotationKey("eu", "acme-registry"), outcome=outcome, trigger=Trigger.SCHEDULE, run_id="run1", **fields
    )  # type: ignore[arg-type]


@pytest.fixture
def server() -> tuple[HealthServer, dict[str, object]]:
    knobs: dict[str, object] = {"live": True, "ready": {"database": "ok", "vault": "ok"}}
    metrics = Metrics()
    metrics.rotation(
        target="eu", secret="acme-registry", outcome="applied", seconds=0.1, at=NOW, success=True, verification="ok"
    )
    probes = Probes(
        live=lambda: bool(knobs["live"]),
        ready=lambda: dict(knobs["ready"]),  # type: ignore[call-overload]
        metrics=metrics.exposition,
        status=lambda: {"pairs": 1, "rotations": [{"secret": "acme-registry"}]},
    )
    health = HealthServer(listen="127.0.0.1:0", probes=probes)
    health.start()
    yield health, knobs
    health.stop()


def test_probes_answer_over_http(server: tuple[HealthServer, dict[str, object]]) -> None:
    """/livez, /readyz, /metrics and /status answer; failing checks turn into 503 with the reason."""
    health, knobs = server
    with httpx.Client(base_url=health.address) as client:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").json() == {"status": "ok", "checks": {"database": "ok", "vault": "ok"}}
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'rotator_rotations_total{outcome="applied",secret="acme-registry",target="eu"} 1.0' in metrics.text
        assert client.get("/status").json() == {"pairs": 1, "rotations": [{"secret": "acme-registry"}]}
        knobs["live"] = False
        knobs["ready"] = {"database": "audit_unavailable: down", "vault": "ok"}
        assert client.get("/livez").status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "audit_unavailable: down"
        assert client.get("/nope").status_code == 404


def test_metrics_cover_what_operators_alert_on() -> None:
    """Every metric the issue names is exported, with names as labels and never a value."""
    metrics = Metrics()
    observer = Observer(metrics=metrics, clock=lambda: NOW)
    observer.rotation_finished(result(credential_expires_at=NOW + timedelta(hours=1)))
    observer.rotation_finished(result(Outcome.REJECTED, verification="auth_failed", error_code="auth_failed"))
    observer.audit_write_failed(AuditUnavailable("audit database unreachable"))
    metrics.next_run_at(secret="acme-registry", at=NOW)
    metrics.vault_token_expires_at(NOW.timestamp())
    text = metrics.exposition()[0].decode()
    for name in (
        "rotator_rotations_total",
        "rotator_rotation_duration_seconds_bucket",
        "rotator_last_success_timestamp_seconds",
        "rotator_last_attempt_timestamp_seconds",
        "rotator_next_run_timestamp_seconds",
        "rotator_credential_expiry_timestamp_seconds",
        "rotator_vault_token_expiry_timestamp_seconds",
        "rotator_audit_write_failures_total 1.0",
        'rotator_build_info{version="',
        'rotator_verification_ok{secret="acme-registry",target="eu"} 0.0',
    ):
        assert name in text
    assert 'outcome="rejected"' in text


def test_one_canonical_log_line_per_rotation() -> None:
    """A rotation is logged once, with every field an operator needs; refusals at error level."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    observer = Observer(metrics=Metrics(), clock=lambda: NOW)
    observer.rotation_finished(result())
    observer.rotation_finished(result(Outcome.REJECTED, error_code="auth_failed", message="registry refused"))
    applied, rejected = (json.loads(line) for line in out.getvalue().splitlines())
    assert applied["event"] == "rotation"
    assert {
        k: applied[k]
        for k in (
            "secret",
            "target",
            "outcome",
            "fingerprint",
            "source_version",
            "duration_ms",
            "request_id",
            "vault_request_id",
        )
    } == {
        "secret": "acme-registry",
        "target": "eu",
        "outcome": "applied",
        "fingerprint": FP_TEXT,
        "source_version": 3,
        "duration_ms": 120,
        "request_id": "req-1",
        "vault_request_id": "vault-req-1",
    }
    assert applied["level"] == "info"
    assert rejected["level"] == "error"


def test_sweep_logs_the_chain_head_as_an_anchor() -> None:
    """After a sweep the audit chain head goes to the log, outside the database."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    report = SweepReport(
        run_id="run1", trigger=Trigger.SCHEDULE, results=[result()], head=ChainHead(7, "f" * 64), duration_ms=5
    )
    Observer(metrics=Metrics(), clock=lambda: NOW).sweep_finished(report)
    anchor = [json.loads(line) for line in out.getvalue().splitlines() if '"audit.anchor"' in line]
    assert anchor[0]["anchor"] == "7:" + "f" * 64


def test_status_rows_and_table() -> None:
    """Every configured key shows, rotated or not, with a short fingerprint."""
    states = {
        RotationKey("eu", "acme-registry"): RotationState(
            key=RotationKey("eu", "acme-registry"),
            fingerprint=FP,
            last_outcome="applied",
            last_success_at=NOW,
            consecutive_failures=0,
            next_run_at=NOW + timedelta(hours=6),
        )
    }
    rows = status_rows([secret(targets=("eu", "us"))], states, now=NOW, allowance=lambda _: timedelta(hours=7))
    assert [(r["target"], r["last_outcome"], r["fingerprint"], r["stale"]) for r in rows] == [
        ("eu", "applied", "k1:abababababab", False),
        ("us", "never", None, True),
    ]
    table = render_table(rows).splitlines()
    assert table[0].split()[:3] == ["TARGET", "SECRET", "LAST_OUTCOME"]
    assert "k1:abababababab" in table[1]


def test_once_report_lines() -> None:
    """`rotator once` prints one line per rotation and a summary with the audit head."""
    report = SweepReport(
        run_id="run1",
        trigger=Trigger.MANUAL,
        head=ChainHead(9, "e" * 64),
        duration_ms=40,
        results=[
            result(),
            result(Outcome.FAILED, error_code="aicore_forbidden", message="no", fingerprint=None, http_status=403),
        ],
    )
    text = render_results(report, as_json=False).splitlines()
    assert text[0].split()[:4] == ["applied", "eu/acme-registry", "k1:abababababab", "v3"]
    assert "[aicore_forbidden] no" in text[1]
    assert text[-1].startswith("run run1: 1 applied, 1 failed in 40ms; audit head 9:")
    lines = [json.loads(line) for line in render_results(report, as_json=True).splitlines()]
    assert (lines[0]["fingerprint"], lines[0]["previous_fingerprint"]) == (FP_TEXT, None)
    assert lines[1]["outcome"] == "failed"
    assert lines[1]["target"] == "eu"


def test_a_pairs_metrics_follow_each_rotation_after_the_first() -> None:
    """Labelled children are looked up once and reused: later rotations still move the pair's series."""
    from datetime import UTC, datetime

    from service.metrics import Metrics

    metrics = Metrics()
    first, later = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
    metrics.rotation(target="eu", secret="s", outcome="applied", seconds=0.1, at=first, success=True, verification="ok")
    metrics.rotation(
        target="eu", secret="s", outcome="failed", seconds=0.1, at=later, success=False, verification="refused"
    )
    value = metrics.registry.get_sample_value
    labels = {"target": "eu", "secret": "s"}
    assert value("rotator_last_attempt_timestamp_seconds", labels) == later.timestamp()
    assert value("rotator_last_success_timestamp_seconds", labels) == first.timestamp()
    assert value("rotator_verification_ok", labels) == 0
    assert value("rotator_secret_synced", labels) == 0
    assert value("rotator_rotations_total", labels | {"outcome": "applied"}) == 1
    assert value("rotator_rotations_total", labels | {"outcome": "failed"}) == 1
    assert value("rotator_paused", {"target": "eu", "secret": "other"}) is None  # never set: absent, not 0
