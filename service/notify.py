"""Notifications: the only module that imports Apprise.

``Notifier`` wraps the composition root's ``RotationListener``: it passes every call on, then
decides (``NoticeBook.after``, pure, given ``now``) whether a pair deserves a message: N
failures in a row, a credential the registry rejected, a pair stale past its schedule, a
credential expiring soon, and the recovery after any of those. One message per pair, per
kind, per period. Messages name the pair, the outcome and our error code, never a value
(and are passed through the log redaction besides). Sending happens on a thread of its own:
a slow or failing destination is logged and counted and never holds up a rotation.
"""

from __future__ import annotations

import enum
import queue
import threading
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from service import logs
from service.errors import ConfigError, ConfigIssue, RotatorError
from service.model import Outcome, RotationKey, fingerprint_text
from service.ports import RotationListener
from service.rotation import Notice as EngineNotice
from service.rotation import RotationResult, SweepReport

log = logs.get_logger("rotator.notify")


class Kind(enum.StrEnum):
    FAILING = "failing"  # N failures in a row
    REJECTED = "rejected"  # the registry refused the new credential
    STALE = "stale"  # no success for longer than the schedule allows
    EXPIRING = "expiring"  # the credential expires soon
    RECOVERED = "recovered"  # back to success after one of the above


_PROBLEMS = frozenset({Kind.FAILING, Kind.REJECTED, Kind.STALE})


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    key: RotationKey
    kind: Kind
    title: str
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    failures_in_a_row: int
    expiring_within: timedelta
    period: timedelta


@dataclass(slots=True)
class NoticeBook:
    """What was seen and sent per pair: the memory behind the decisions (one process's view)."""

    policy: Policy
    started_at: datetime
    failures: dict[RotationKey, int] = field(default_factory=dict)
    last_success: dict[RotationKey, datetime] = field(default_factory=dict)
    troubled: set[RotationKey] = field(default_factory=set)  # a problem was notified, no recovery yet
    sent: dict[tuple[RotationKey, Kind], datetime] = field(default_factory=dict)

    def after(self, result: RotationResult, *, now: datetime, allowance: timedelta | None) -> list[Notice]:
        """The notices ``result`` calls for, rate-limited; records what it decided."""
        wanted = self._wanted(result, now=now, allowance=allowance)
        notices = [notice for notice in wanted if self._may_send(notice, now)]
        for notice in notices:
            self.sent[(notice.key, notice.kind)] = now
            if notice.kind in _PROBLEMS:
                self.troubled.add(notice.key)
            elif notice.kind is Kind.RECOVERED:
                self.troubled.discard(notice.key)
        return notices

    def _wanted(self, result: RotationResult, *, now: datetime, allowance: timedelta | None) -> list[Notice]:
        key, kinds = result.key, []
        if result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            self.failures[key] = 0
            self.last_success[key] = now
            if key in self.troubled:
                kinds.append(Kind.RECOVERED)
            expires = result.credential_expires_at
            if expires is not None and expires - now <= self.policy.expiring_within:
                kinds.append(Kind.EXPIRING)
        elif result.failed or result.outcome is Outcome.UNKNOWN:
            self.failures[key] = self.failures.get(key, 0) + 1
            if result.outcome is Outcome.REJECTED:
                kinds.append(Kind.REJECTED)
            elif self.failures[key] >= self.policy.failures_in_a_row:
                kinds.append(Kind.FAILING)
            since = self.last_success.get(key, self.started_at)
            if allowance is not None and now - since > allowance:
                kinds.append(Kind.STALE)
        return [_notice(result, kind, failures=self.failures.get(key, 0), now=now) for kind in kinds]

    def _may_send(self, notice: Notice, now: datetime) -> bool:
        last = self.sent.get((notice.key, notice.kind))
        return last is None or now - last >= self.policy.period


def _notice(result: RotationResult, kind: Kind, *, failures: int, now: datetime) -> Notice:
    key = result.key
    lines = {
        Kind.FAILING: f"{failures} failures in a row; the last: {_problem(result)}",
        Kind.REJECTED: f"the registry refused the new credential; nothing was written: {_problem(result)}",
        Kind.STALE: f"not brought up to date within its schedule; the last attempt: {_problem(result)}",
        Kind.EXPIRING: f"the credential expires at {_iso(result.credential_expires_at)}",
        Kind.RECOVERED: f"back to normal: {result.outcome}",
    }
    facts = [
        f"pair: {key}",
        f"outcome: {result.outcome} (trigger {result.trigger}, run {result.run_id})",
        f"fingerprint: {fingerprint_text(result.fingerprint) or '-'}",
        f"at: {_iso(now)}",
    ]
    body = "\n".join([lines[kind], *facts])
    return Notice(key=key, kind=kind, title=f"rotator: {kind} {key}", body=logs.redact_text(body))


def _problem(result: RotationResult) -> str:
    return f"[{result.error_code or result.outcome}] {result.message or ''}".strip()


def _iso(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "-"


# --- sending ----------------------------------------------------------------------------


class Sender(Protocol):
    def send(self, notice: Notice) -> bool:
        """Deliver to every destination; False when any failed. Never raises."""
        ...


class AppriseSender:
    """Delivers notices to Apprise URLs (resolved from their references by the composition root)."""

    def __init__(self, urls: Sequence[str], *, timeout: timedelta) -> None:
        apprise = _apprise()
        self._apprise = apprise
        self._targets = apprise.Apprise()
        for index, url in enumerate(urls):
            plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
            if plugin is None:  # the URL itself may hold a token: name its place, never its text
                raise ConfigError(
                    "configuration",
                    [ConfigIssue(f"notify.urls[{index}]", "Apprise cannot parse this URL (unknown scheme or form)")],
                )
            plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout.total_seconds()
            self._targets.add(plugin)

    def send(self, notice: Notice) -> bool:
        kind = self._apprise.NotifyType.SUCCESS if notice.kind is Kind.RECOVERED else self._apprise.NotifyType.FAILURE
        if notice.kind is Kind.EXPIRING:
            kind = self._apprise.NotifyType.WARNING
        try:
            return bool(self._targets.notify(body=notice.body, title=notice.title, notify_type=kind))
        except Exception as e:  # noqa: BLE001 (a plugin's failure must never reach a rotation)
            log.warning("notify.error", error=type(e).__name__)
            return False


def check_urls(urls: Sequence[str]) -> list[ConfigIssue]:
    """The URLs Apprise cannot parse, by their place in ``notify.urls``."""
    apprise = _apprise()

    return [
        ConfigIssue(f"notify.urls[{index}]", "Apprise cannot parse this URL (unknown scheme or form)")
        for index, url in enumerate(urls)
        if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None
    ]


def _apprise() -> Any:
    """The apprise module with its plugins loaded (one of them imports ``imghdr``, which warns on 3.11+)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        apprise.Apprise.instantiate("json://localhost", suppress_exceptions=True)  # loads every plugin, here
    return apprise


class Counters(Protocol):
    def notification(self, *, kind: str, ok: bool) -> None: ...


class Notifier:
    """A ``RotationListener`` that passes every call on to ``inner`` and sends notices on its own thread."""

    def __init__(
        self,
        *,
        inner: RotationListener,
        sender: Sender,
        policy: Policy,
        clock: Callable[[], datetime],
        allowance: Callable[[RotationKey], timedelta | None],
        counters: Counters,
    ) -> None:
        self._inner = inner
        self._sender = sender
        self._clock = clock
        self._allowance = allowance
        self._counters = counters
        self._book = NoticeBook(policy=policy, started_at=clock())
        self._lock = threading.Lock()
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver, name="notify", daemon=True)
        self._thread.start()

    def rotation_finished(self, result: RotationResult) -> None:
        self._inner.rotation_finished(result)
        try:
            with self._lock:
                notices = self._book.after(result, now=self._clock(), allowance=self._allowance(result.key))
        except Exception as e:  # noqa: BLE001 (a notification bug never stops a rotation)
            log.warning("notify.decide_failed", error=type(e).__name__)
            return
        for notice in notices:
            self._queue.put(notice)

    def sweep_finished(self, report: SweepReport) -> None:
        self._inner.sweep_finished(report)

    def audit_write_failed(self, error: RotatorError) -> None:
        self._inner.audit_write_failed(error)

    def noticed(self, notice: EngineNotice) -> None:
        self._inner.noticed(notice)

    def rotating(self, run_id: str, key: RotationKey) -> AbstractContextManager[None]:
        return self._inner.rotating(run_id, key)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (bounded by ``timeout``), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _deliver(self) -> None:
        while (notice := self._queue.get()) is not None:
            ok = self._sender.send(notice)
            self._counters.notification(kind=str(notice.kind), ok=ok)
            fields: dict[str, Any] = {
                "kind": str(notice.kind),
                "target": notice.key.target,
                "secret": notice.key.secret,
            }
            if ok:
                log.info("notify.sent", **fields)
            else:
                log.error("notify.failed", **fields)
