"""Deny and allow windows: pure decisions over the windows and a given ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.config import WindowConfig, load_settings
from service.errors import ConfigError
from service.windows import blocked, span_at, upcoming

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a Tuesday


def deny(cron: str, duration: str, timezone: str = "UTC") -> WindowConfig:
    return WindowConfig(kind="deny", cron=cron, duration=duration, timezone=timezone)  # type: ignore[arg-type]


def allow(cron: str, duration: str, timezone: str = "UTC") -> WindowConfig:
    return WindowConfig(kind="allow", cron=cron, duration=duration, timezone=timezone)  # type: ignore[arg-type]


def test_no_windows_never_block() -> None:
    """Without windows every moment is free."""
    assert blocked([], AT) is None


def test_inside_a_deny_window_writing_waits_for_its_end() -> None:
    """A daily 11:00 window of 2 h holds 12:00 until 13:00, and says which window it is."""
    window = deny("0 11 * * *", "2h")
    block = blocked([window], AT)
    assert block is not None
    assert block.until == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    assert block.window == window
    assert "until 2026-12-01T13:00:00+00:00" in block.describe()


def test_a_window_is_half_open() -> None:
    """At the start the window holds; at its end it no longer does."""
    window = deny("0 12 * * *", "1h")
    assert blocked([window], AT) is not None
    assert blocked([window], AT + timedelta(hours=1)) is None
    assert blocked([window], AT - timedelta(microseconds=1)) is None


def test_overlapping_deny_windows_are_followed_to_the_first_free_moment() -> None:
    """11:00 for 2 h then 12:30 for 1 h: 12:00 waits until 13:30."""
    block = blocked([deny("0 11 * * *", "2h"), deny("30 12 * * *", "1h")], AT)
    assert block is not None
    assert block.until == datetime(2026, 12, 1, 13, 30, tzinfo=UTC)


def test_a_window_in_another_time_zone() -> None:
    """13:00 Berlin is 12:00 UTC in winter: a 13:00 Europe/Berlin window of 30 min holds until 12:30 UTC."""
    block = blocked([deny("0 13 * * *", "30m", "Europe/Berlin")], AT)
    assert block is not None
    assert block.until == datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def test_outside_every_allow_window_writing_waits_for_the_next_one() -> None:
    """Allowed only 02:00-04:00: at noon the next chance is 02:00 tomorrow; inside it, writing is free."""
    window = allow("0 2 * * *", "2h")
    block = blocked([window], AT)
    assert block is not None
    assert block.outside_allow
    assert block.until == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    assert blocked([window], datetime(2026, 12, 2, 3, 0, tzinfo=UTC)) is None


def test_a_deny_window_inside_an_allow_window_still_holds() -> None:
    """Allowed 10:00-14:00 but denied 11:30-12:15: noon waits until 12:15."""
    block = blocked([allow("0 10 * * *", "4h"), deny("30 11 * * *", "45m")], AT)
    assert block is not None
    assert block.until == datetime(2026, 12, 1, 12, 15, tzinfo=UTC)


def test_span_at_and_upcoming_openings() -> None:
    """The open window comes first, then the next openings in time order."""
    window = deny("0 */6 * * *", "1h")
    assert span_at(window, AT) is not None
    spans = upcoming([window], AT, count=3)
    assert [span.start.hour for span in spans] == [12, 18, 0]
    assert all(span.end - span.start == timedelta(hours=1) for span in spans)


@pytest.mark.parametrize(
    ("window", "words"),
    [
        ('cron = "61 * * * *"\nduration = "1h"', "bad cron expression"),
        ('cron = "0 2 * * *"\nduration = "soon"', "duration"),
        ('cron = "0 2 * * *"\nduration = "0s"', "duration must be positive"),
        ('cron = "0 2 * * *"\nduration = "1h"\ntimezone = "Mars/Olympus"', "bad cron expression"),
        ('cron = "0 2 * * *"\nduration = "1h"\nkind = "maybe"', "kind"),
    ],
)
def test_a_bad_window_is_a_config_error_naming_the_key(tmp_path: Path, window: str, words: str) -> None:
    """A bad cron, duration, time zone or kind fails loading with the window's key in the message."""
    path = tmp_path / "rotator.toml"
    path.write_text(f"[[windows]]\n{window}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "windows[0]" in str(caught.value)
    assert words in str(caught.value)
