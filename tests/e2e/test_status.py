"""`rotator status` and the worker's HTTP port (/status, /livez, /readyz, /metrics) after some rotations."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import __version__
from tests.e2e.processes import is_rotation
from tests.e2e.scene import Scene, rows_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str) -> Samples:
    """Every sample of /metrics, parsed as Prometheus would."""
    response = httpx.get(f"{base}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _short(fingerprint: str) -> str:
    _, key_id, digest = fingerprint.split(":")
    return f"{key_id}:{digest[:12]}"


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["target"], row["secret"]): row for row in rows}


@pytest.mark.slow
def test_status_and_the_http_port_describe_the_rotations(scene: Scene) -> None:
    """Last outcome, last success, failures, next run and short fingerprint, on the CLI, /status and /metrics."""
    scene.every = "1h"  # one start-up rotation each, then a stable picture to describe
    scene.set("rotation", failure_backoff="10m")  # gone-registry fails once, not again while the test reads
    scene.use_approle()
    scene.add_tenant("tenant-a")
    scene.add_secret("acme-registry", targets=["tenant-a"], path="registries/acme")
    scene.add_secret("gone-registry", targets=["tenant-a"], path="registries/nowhere")
    scene.put("registries/acme")
    started = time.time()
    worker = scene.start_worker()
    base = worker.http_url()
    worker.wait_for(is_rotation(secret="acme-registry", outcome="applied"), what="acme-registry applied")
    worker.wait_for(is_rotation(secret="gone-registry", outcome="failed"), what="gone-registry failed")
    [applied] = rows_of(scene.audit_rows(), event="applied")

    live = httpx.get(f"{base}/livez", timeout=5)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200
    checks = {"database": "ok", "vault": "ok", "instance_lock": "ok", "scheduler": "ok"}
    assert ready.json() == {"status": "ok", "checks": checks}

    status = httpx.get(f"{base}/status", timeout=5)
    assert status.status_code == 200
    rows = _by_key(status.json()["rotations"])
    good, bad = rows[("tenant-a", "acme-registry")], rows[("tenant-a", "gone-registry")]
    assert good["last_outcome"] == "applied"
    assert good["fingerprint"] == _short(applied["fingerprint"])
    assert good["failures"] == 0
    assert good["source_version"] == 1
    assert datetime.fromisoformat(good["next_run_at"]) > datetime.fromisoformat(good["last_attempt_at"])
    assert started - 1 <= datetime.fromisoformat(good["last_success_at"]).timestamp() <= time.time() + 1
    assert bad["last_outcome"] == "failed"
    assert bad["last_error_code"] == "source_not_found"
    assert bad["failures"] == 1
    assert bad["last_success_at"] is None
    assert bad["fingerprint"] is None
    assert (good["stale"], bad["stale"]) == (False, True)  # bad has never succeeded
    assert (status.json()["pairs"], status.json()["stale"]) == (2, 1)

    samples = scrape(base)  # from the start: a zero token expiry would fire an "expires soon" alert
    now = time.time()
    key = {"target": "tenant-a", "secret": "acme-registry"}
    assert (sample(samples, "rotator_rotations_total", **key, outcome="applied") or 0) >= 1
    assert sample(samples, "rotator_rotations_total", target="tenant-a", secret="gone-registry", outcome="failed") == 1
    assert started - 1 <= (sample(samples, "rotator_last_success_timestamp_seconds", **key) or 0) <= now
    assert now <= (sample(samples, "rotator_next_run_timestamp_seconds", secret="acme-registry") or 0) <= now + 3600
    assert now + 3000 <= (sample(samples, "rotator_vault_token_expiry_timestamp_seconds") or 0) <= now + 3600
    assert sample(samples, "rotator_build_info", version=__version__) == 1

    as_json = _by_key(json.loads(scene.rotator("status", "--json").stdout))
    for row_key, row in as_json.items():
        for column in ("last_outcome", "last_error_code", "fingerprint", "source_version", "last_success_at"):
            assert row[column] == rows[row_key][column], (row_key, column)
        assert row["failures"] == rows[row_key]["failures"]
        assert row["next_run_at"] == rows[row_key]["next_run_at"]
    table = scene.rotator("status").lines
    assert table[0].split() == [
        "TARGET",
        "SECRET",
        "LAST_OUTCOME",
        "LAST_SUCCESS_AT",
        "FAILURES",
        "NEXT_RUN_AT",
        "FINGERPRINT",
        "VERIFICATION",
        "STALE",
        "HOLD",
    ]
    assert table[-1] == "2 pairs, 1 stale, 0 never, 1 failing"
    cells = {tuple(line.split()[:2]): line.split() for line in table[1:-1]}
    assert cells[("tenant-a", "acme-registry")][2:5] == ["applied", good["last_success_at"], "0"]
    assert cells[("tenant-a", "acme-registry")][6] == _short(applied["fingerprint"])
    assert cells[("tenant-a", "gone-registry")][2:5] == ["failed", "-", "1"]
    assert worker.stop() == 0
