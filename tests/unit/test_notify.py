"""Notifications: which results call for a message, rate limits, and a notifier that never stops a rotation."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from service.errors import ConfigError
from service.metrics import Metrics
from service.model import Outcome, RotationKey, Trigger
from service.notify import AppriseSender, Kind, Notice, NoticeBook, Notifier, Policy, check_urls
from service.rotation import RotationResult
from tests.fakes import NOW, FakeClock, RecordingListener

KEY = RotationKey("eu", "acme-registry")
POLICY = Policy(failures_in_a_row=3, expiring_within=timedelta(days=1), period=timedelta(hours=1))
SENTINEL = "SENTINEL-notify-password-91c2"


def _result(outcome: Outcome, **more: object) -> RotationResult:
    return RotationResult(key=KEY, outcome=outcome, trigger=Trigger.SCHEDULE, run_id="r1", **more)  # type: ignore[arg-type]


def _failed() -> RotationResult:
    return _result(Outcome.FAILED, error_code="aicore_forbidden", message="403 from AI Core")


def _kinds(
    book: NoticeBook, result: RotationResult, *, at: timedelta = timedelta(0), allowance: timedelta | None = None
) -> list[Kind]:
    return [notice.kind for notice in book.after(result, now=NOW + at, allowance=allowance)]


def test_n_failures_in_a_row_send_one_message_per_period() -> None:
    """The third failure in a row notifies; the fourth within the hour does not; one after the hour does."""
    book = NoticeBook(policy=POLICY, started_at=NOW)
    assert _kinds(book, _failed()) == []
    assert _kinds(book, _failed()) == []
    assert _kinds(book, _failed()) == [Kind.FAILING]
    assert _kinds(book, _failed(), at=timedelta(minutes=30)) == []
    assert _kinds(book, _failed(), at=timedelta(minutes=61)) == [Kind.FAILING]


def test_a_success_resets_the_count_and_sends_one_recovery() -> None:
    """After a notified failure, the next success says so once; later successes say nothing."""
    book = NoticeBook(policy=POLICY, started_at=NOW)
    for _ in range(3):
        book.after(_failed(), now=NOW, allowance=None)
    assert _kinds(book, _result(Outcome.APPLIED)) == [Kind.RECOVERED]
    assert _kinds(book, _result(Outcome.UNCHANGED)) == []
    assert _kinds(book, _failed()) == []


def test_a_success_without_a_notified_problem_is_silent() -> None:
    """Two failures (below the threshold) then a success: no message at all."""
    book = NoticeBook(policy=POLICY, started_at=NOW)
    book.after(_failed(), now=NOW, allowance=None)
    assert _kinds(book, _result(Outcome.APPLIED)) == []


def test_a_rejected_credential_notifies_at_once() -> None:
    """A registry refusal is worth a message on the first occurrence."""
    book = NoticeBook(policy=POLICY, started_at=NOW)
    assert _kinds(book, _result(Outcome.REJECTED, error_code="auth_failed")) == [Kind.REJECTED]


def test_a_pair_failing_past_its_schedule_is_stale() -> None:
    """No success for longer than the allowance: ``stale`` beside the failure."""
    book = NoticeBook(policy=POLICY, started_at=NOW)
    assert _kinds(book, _failed(), at=timedelta(hours=2), allowance=timedelta(hours=1)) == [Kind.STALE]


def test_a_credential_expiring_soon_is_announced() -> None:
    """A success whose credential expires within a day warns, once per period."""
    book = NoticeBook(policy=POLICY, started_at=NOW)
    soon = _result(Outcome.APPLIED, credential_expires_at=NOW + timedelta(hours=5))
    assert _kinds(book, soon) == [Kind.EXPIRING]
    assert _kinds(book, soon, at=timedelta(minutes=5)) == []
    later = _result(Outcome.APPLIED, credential_expires_at=NOW + timedelta(days=3))
    assert _kinds(book, later, at=timedelta(hours=2)) == []


def test_messages_name_the_pair_and_code_never_a_value() -> None:
    """The body has the pair, outcome and error code; a credential-shaped message is masked."""
    book = NoticeBook(policy=POLICY, started_at=NOW)
    result = _result(Outcome.REJECTED, error_code="auth_failed", message="token=hvs.ABCDEFGHIJKLMNOPQRSTUVWX01 refused")
    [notice] = book.after(result, now=NOW, allowance=None)
    assert notice.title == "rotator: rejected eu/acme-registry"
    assert "[auth_failed]" in notice.body
    assert "hvs.ABCDEFGHIJKLMNOPQRSTUVWX01" not in notice.body


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, object]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A loopback JSON webhook; its Apprise URL and what it received."""
    received: list[dict[str, object]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"json://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_apprise_delivers_to_a_loopback_webhook(hook: tuple[str, list[dict[str, object]]]) -> None:
    """A real Apprise json:// destination receives the title, the body and the failure type."""
    url, received = hook
    sender = AppriseSender([url], timeout=timedelta(seconds=5))
    assert sender.send(Notice(key=KEY, kind=Kind.FAILING, title="rotator: failing eu/acme-registry", body="3 failures"))
    [message] = received
    assert (message["title"], message["message"], message["type"]) == (
        "rotator: failing eu/acme-registry",
        "3 failures",
        "failure",
    )


def test_a_url_apprise_cannot_parse_is_a_config_error_naming_its_place() -> None:
    """The error names notify.urls[1], never the URL (which may hold a token)."""
    assert [issue.location for issue in check_urls(["json://127.0.0.1:1/x", f"nonsense://{SENTINEL}"])] == [
        "notify.urls[1]"
    ]
    with pytest.raises(ConfigError) as caught:
        AppriseSender(["json://127.0.0.1:1/x", f"nonsense://{SENTINEL}"], timeout=timedelta(seconds=1))
    assert "notify.urls[1]" in str(caught.value)
    assert SENTINEL not in str(caught.value)


def test_an_unreachable_destination_is_counted_and_never_stops_a_rotation() -> None:
    """Nothing listens on the port: the listener calls still pass through, the failure is counted."""
    metrics = Metrics()
    inner = RecordingListener()
    notifier = Notifier(
        inner=inner,
        sender=AppriseSender(["json://127.0.0.1:9/nobody"], timeout=timedelta(seconds=1)),
        policy=Policy(failures_in_a_row=1, expiring_within=timedelta(days=1), period=timedelta(hours=1)),
        clock=FakeClock(),
        allowance=lambda key: None,
        counters=metrics,
    )
    notifier.rotation_finished(_failed())
    notifier.close()
    assert inner.results == [_failed()]
    failed = metrics.registry.get_sample_value("rotator_notifications_total", {"kind": "failing", "result": "failed"})
    assert failed == 1
