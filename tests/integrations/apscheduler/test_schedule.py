"""APScheduler triggers → the schedule Chronos registers, checked against real fire times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from croniter import croniter

from chronos_core import JobDefinition, RunMode
from chronos_integrations.apscheduler import _require_apscheduler_3
from chronos_integrations.apscheduler._schedule import schedule_of

CRON_CASES: list[tuple[dict[str, Any], str]] = [
    ({"hour": 6, "minute": 30}, "30 6 * * *"),
    ({"minute": "*/15"}, "*/15 * * * *"),
    ({"minute": "5/20"}, "5-59/20 * * * *"),
    ({"hour": "9-17", "minute": 0}, "0 9-17 * * *"),
    # day_of_week: APScheduler counts mon=0 … sun=6, cron sun=0 … sat=6
    ({"day_of_week": "mon-fri", "hour": 9}, "0 9 * * 1-5"),
    ({"day_of_week": "sun"}, "0 0 * * 0"),
    ({"day_of_week": "sat,sun"}, "0 0 * * 0,6"),
    ({"day_of_week": "5-6"}, "0 0 * * 0,6"),
    ({"day_of_week": "0"}, "0 0 * * 1"),
    ({"day_of_week": "6"}, "0 0 * * 0"),
    ({"day_of_week": "*/2"}, "0 0 * * 0-1,3,5"),
    ({"day_of_week": "tue,thu", "hour": 22}, "0 22 * * 2,4"),
    ({"day_of_week": "mon-sun"}, "0 0 * * *"),
    ({"month": "jan-mar", "day": 1}, "0 0 1 1-3 *"),
    ({"month": "6,12", "day": 15, "hour": 12}, "0 12 15 6,12 *"),
    ({"day": "last"}, "0 0 L * *"),
    ({"day": "1st mon"}, "0 0 * * 1#1"),
    ({"day": "3rd fri"}, "0 0 * * 5#3"),
    ({"day": "last fri"}, "0 0 * * L5"),
    ({"day": "1-7", "day_of_week": "mon"}, "0 0 * * 1#1"),
    ({"day": "8-14", "day_of_week": "sun"}, "0 0 * * 0#2"),
]


@pytest.mark.parametrize(("fields", "expected"), CRON_CASES, ids=[c[1] for c in CRON_CASES])
def test_cron_trigger_becomes_the_equivalent_cron(fields: dict[str, Any], expected: str) -> None:
    trigger = CronTrigger(timezone="Asia/Tokyo", **fields)
    info = schedule_of(trigger)
    assert info.schedule == expected
    assert info.timezone == "Asia/Tokyo"
    assert info.notes == ()
    # The cron string fires exactly when APScheduler does (in a zone without DST: APScheduler
    # 3 itself skips some runs right after a DST change).
    zone = ZoneInfo("Asia/Tokyo")
    start = datetime(2025, 1, 1, tzinfo=zone)
    expected_times = croniter(expected, start - timedelta(seconds=1))  # croniter excludes start
    previous = None
    now = start
    for _ in range(60):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire == expected_times.get_next(datetime), (fields, previous)
        previous, now = fire, fire + timedelta(microseconds=1)


def test_from_crontab_keeps_apschedulers_own_weekday_meaning() -> None:
    # APScheduler 3 reads '0' in from_crontab as Monday (its numbering); the job runs on
    # Mondays, so that is what gets registered.
    assert schedule_of(CronTrigger.from_crontab("0 12 * * 0", timezone="UTC")).schedule == (
        "0 12 * * 1"
    )
    assert schedule_of(CronTrigger.from_crontab("0 12 * * sun", timezone="UTC")).schedule == (
        "0 12 * * 0"
    )


@pytest.mark.parametrize(
    ("fields", "schedule", "note"),
    [
        ({"second": "*/10"}, "* * * * *", "second=*/10"),
        ({"year": 2030, "hour": 1}, "0 1 * * *", "year=2030"),
        ({"week": 5}, "0 0 * * *", "week=5"),
        ({"day": 10, "day_of_week": "fri"}, "0 0 * * 5", "AND day_of_week"),
        ({"hour": 3, "jitter": 30}, "0 3 * * *", "jitter"),
    ],
)
def test_what_cron_cannot_say_is_named_in_the_description(
    fields: dict[str, Any], schedule: str, note: str
) -> None:
    info = schedule_of(CronTrigger(timezone="UTC", **fields))
    assert info.schedule == schedule
    assert any(note in text for text in info.notes), info.notes


def test_interval_trigger_is_an_interval() -> None:
    info = schedule_of(IntervalTrigger(minutes=5, timezone="America/New_York"))
    assert (info.schedule, info.interval_seconds, info.run_mode) == ("", 300.0, "recurring")
    assert info.timezone == "America/New_York"
    definition = JobDefinition(id="j", name="j", interval_seconds=info.interval_seconds)
    assert definition.to_wire()["intervalSeconds"] == 300.0


def test_date_trigger_is_a_one_time_job() -> None:
    when = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    info = schedule_of(DateTrigger(run_date=when))
    assert (info.run_mode, info.schedule, info.run_at) == ("once", "", when)
    definition = JobDefinition(id="j", name="j", run_mode=RunMode.ONCE, run_at=info.run_at)
    assert definition.to_wire()["runAt"] == "2030-05-01T12:00:00.000Z"


def test_timezone_of_a_fixed_offset_is_left_out() -> None:
    from datetime import timezone

    info = schedule_of(CronTrigger(hour=1, timezone=timezone(timedelta(hours=2))))
    assert info.timezone is None
    assert schedule_of(CronTrigger(hour=1, timezone=UTC)).timezone == "UTC"


@pytest.mark.parametrize("version", ["4.0.0a6", "4.0.0", "2.1.2", "3.9.1"])
def test_other_apscheduler_versions_are_refused_clearly(version: str) -> None:
    with pytest.raises(ImportError, match=r"APScheduler 3\.10\+.*APScheduler 4"):
        _require_apscheduler_3(version)


def test_supported_versions_pass() -> None:
    _require_apscheduler_3("3.10.4")
    _require_apscheduler_3("3.11.3")
