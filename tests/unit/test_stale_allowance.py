"""`App.stale_allowance`: a schedule's period plus the misfire grace, with a memory that stays bounded.

The worker asks for every pair's allowance every 10 minutes, for as long as it runs. Its cache
once kept one entry per (schedule, name, hour) until 100,000 entries: 5,000 pairs grew it by
5,000 entries an hour, most of a day's worth of RSS before it was cleared.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.app import App
from service.config import Settings

GRACE = timedelta(minutes=10)


def settings(*secrets: dict[str, object], grace: str = "10m") -> Settings:
    return Settings.model_validate(
        {
            "targets": {"eu": {"service_key": {"env": "EU_KEY"}}},
            "secrets": list(secrets),
            "defaults": {"schedule": {"every": "6h"}},
            "rotation": {"misfire_grace": grace},
        }
    )


def entry(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "targets": ["eu"], "source": {"path": f"registries/{name}"}, **extra}


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_an_every_schedule_allows_its_period_plus_the_grace() -> None:
    config = settings(entry("pull-a"), entry("pull-b", schedule={"every": "1h"}))
    app = App(config, clock=Clock(datetime(2026, 12, 3, 12, tzinfo=UTC)))
    assert app.stale_allowance(config.specs()[0]) == timedelta(hours=6) + GRACE
    assert app.stale_allowance(config.specs()[1]) == timedelta(hours=1) + GRACE


def test_a_cron_schedule_allows_the_gap_between_its_runs_plus_the_grace() -> None:
    daily = entry("nightly", schedule={"cron": "0 3 * * *", "max_phase": "0s"})
    weekdays = entry("weekdays", schedule={"cron": "0 3 * * 1-5", "max_phase": "0s"})
    config = settings(daily, weekdays)
    friday_noon = datetime(2026, 12, 4, 12, tzinfo=UTC)  # next runs: Monday 03:00, Tuesday 03:00
    app = App(config, clock=Clock(friday_noon))
    assert app.stale_allowance(config.specs()[0]) == timedelta(days=1) + GRACE
    assert app.stale_allowance(config.specs()[1]) == timedelta(days=1) + GRACE
    app.clock = Clock(friday_noon - timedelta(days=1))  # Thursday: Friday 03:00, then Monday 03:00
    assert app.stale_allowance(config.specs()[1]) == timedelta(days=3) + GRACE


def test_a_reloaded_grace_counts_at_once() -> None:
    app = App(settings(entry("pull-a")), clock=Clock(datetime(2026, 12, 3, 12, tzinfo=UTC)))
    assert app.stale_allowance(app.settings.specs()[0]) == timedelta(hours=6) + GRACE
    app.adopt(settings(entry("pull-a"), grace="1h"))
    assert app.stale_allowance(app.settings.specs()[0]) == timedelta(hours=7)


def test_a_week_of_questions_keeps_only_the_current_hours_periods() -> None:
    """50 cron pairs asked every 10 minutes for a week: the periods kept never outnumber the pairs."""
    config = settings(*(entry(f"pull-{i}", schedule={"cron": "0 3 * * *"}) for i in range(50)))
    clock = Clock(datetime(2026, 12, 3, tzinfo=UTC))
    app = App(config, clock=clock)
    kept, specs = 0, config.specs()
    for _ in range(7 * 24 * 6):
        for secret in specs:
            assert app.stale_allowance(secret) == timedelta(days=1) + GRACE
        kept = max(kept, len(app._periods))
        clock.at += timedelta(minutes=10)
    assert kept == len(config.secrets)
