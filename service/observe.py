"""The listener the composition root hangs on the use case: one log line per rotation, and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from service import logs
from service.anchors import Anchorer, LogSink
from service.errors import RotatorError
from service.metrics import Metrics
from service.model import Outcome, RotationKey, fingerprint_text
from service.rotation import Notice, RotationResult, SweepReport

_LEVELS = {
    Outcome.FAILED: "error",
    Outcome.REJECTED: "error",
    Outcome.UNKNOWN: "warning",
    Outcome.INTERRUPTED: "warning",
}


class Observer:
    """Implements ``service.ports.RotationListener`` with structlog and Prometheus."""

    def __init__(self, *, metrics: Metrics, clock: Any, anchorer: Anchorer | None = None) -> None:
        self._metrics = metrics
        self._clock = clock
        self._log = logs.get_logger("rotator")
        self._anchorer = anchorer or Anchorer(
            signer=None, sinks=[LogSink()], instance="", clock=clock, on_failure=anchor_failure_reporter(metrics)
        )

    def rotation_finished(self, result: RotationResult) -> None:
        """The canonical line: everything an operator needs about one rotation, nothing secret."""
        level = _LEVELS.get(result.outcome, "info")
        getattr(self._log, level)(
            "rotation",
            run_id=result.run_id,
            target=result.key.target,
            secret=result.key.secret,
            outcome=str(result.outcome),
            trigger=str(result.trigger),
            fingerprint=fingerprint_text(result.fingerprint),
            previous_fingerprint=fingerprint_text(result.previous_fingerprint),
            source_version=result.source_version,
            vault_request_id=result.vault_request_id,
            verification=result.verification,
            duration_ms=result.duration_ms,
            http_status=result.http_status,
            request_id=result.request_id,
            error_code=result.error_code,
            message=result.message,
            next_run_at=_iso(result.next_run_at),
        )
        self._metrics.rotation(
            target=result.key.target,
            secret=result.key.secret,
            outcome=str(result.outcome),
            seconds=result.duration_ms / 1000,
            at=self._clock(),
            verification=result.verification,
            success=result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED),
        )
        if result.credential_expires_at is not None:
            self._metrics.credential_expires_at(secret=result.key.secret, at=result.credential_expires_at)

    def sweep_finished(self, report: SweepReport) -> None:
        """A summary line, and the chain head, when it moved, signed and written outside the database."""
        self._metrics.sweep_duration.observe(report.duration_ms / 1000)
        self._log.info(
            "sweep.finished",
            run_id=report.run_id,
            trigger=str(report.trigger),
            duration_ms=report.duration_ms,
            **report.counts(),
        )
        if report.head is not None:
            self._metrics.audit_head.set(report.head.seq)
            self._anchorer.head_moved(report.head)

    def audit_write_failed(self, error: RotatorError) -> None:
        self._metrics.audit_write_failures.inc()
        self._log.error("audit.write_failed", error=error.code, message=str(error))

    def noticed(self, notice: Notice) -> None:
        """A log line of the engine's: its event, level and fields (a bug's traceback without locals)."""
        extra: dict[str, Any] = dict(notice.fields)
        if notice.exception is not None:
            extra["exc_info"] = notice.exception
        getattr(self._log, notice.level)(notice.event, **extra)

    @contextmanager
    def rotating(self, run_id: str, key: RotationKey) -> Iterator[None]:
        """Every log line inside names the run, the secret and the target (structlog contextvars)."""
        logs.bind(run_id=run_id, secret=key.secret, target=key.target)
        try:
            yield
        finally:
            logs.unbind("run_id", "secret", "target")


def anchor_failure_reporter(metrics: Metrics) -> Callable[[str, RotatorError | OSError], None]:
    """What an anchor sink's failure does: one error line and a count; the worker goes on."""
    log = logs.get_logger("rotator.anchors")

    def report(sink: str, error: RotatorError | OSError) -> None:
        metrics.anchor_failures.labels(sink=sink).inc()
        code = error.code if isinstance(error, RotatorError) else type(error).__name__
        log.error("audit.anchor_failed", sink=sink, error=code, message=str(error))

    return report


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
