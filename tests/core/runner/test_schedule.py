"""Cron schedules: edge cases and the daylight-saving rules of docs/runner.md."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chronos_core.runner import CronSchedule

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def fires(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    out = []
    instant: datetime | None = start
    while True:
        instant = schedule.next_after(instant)  # type: ignore[arg-type]
        if instant is None or instant > end:
            return out
        out.append(instant)


def local(instants: list[datetime], zone: ZoneInfo) -> list[str]:
    return [i.astimezone(zone).strftime("%m-%d %H:%M %Z") for i in instants]


# -- plain cron --------------------------------------------------------------------------


def test_next_is_strictly_after_the_given_instant() -> None:
    schedule = CronSchedule("0 12 * * *")
    noon = datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert schedule.next_after(noon) == noon + timedelta(days=1)
    assert schedule.next_after(noon - timedelta(microseconds=1)) == noon


def test_day_of_month_and_day_of_week_match_either() -> None:
    # Standard cron: when both are restricted, a day matching either one fires.
    schedule = CronSchedule("0 0 13 * 5")
    days = fires(schedule, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 30, tzinfo=UTC))
    assert [d.day for d in days] == [6, 13, 20, 27]


def test_leap_day_and_impossible_dates() -> None:
    leap = CronSchedule("0 0 29 2 *")
    assert leap.next_after(datetime(2025, 1, 1, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)
    assert CronSchedule("0 0 30 2 *").next_after(datetime(2025, 1, 1, tzinfo=UTC)) is None


def test_aliases_steps_ranges_and_seconds() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert CronSchedule("@hourly").next_after(start) == start + timedelta(hours=1)
    assert CronSchedule("@daily").next_after(start) == start + timedelta(days=1)
    weekdays = fires(CronSchedule("30 9 * * 1-5"), start, start + timedelta(days=7))
    assert [d.strftime("%a %H:%M") for d in weekdays] == [
        "Wed 09:30", "Thu 09:30", "Fri 09:30", "Mon 09:30", "Tue 09:30"
    ]  # fmt: skip
    every_20s = fires(CronSchedule("* * * * * */20"), start, start + timedelta(minutes=1))
    assert [d.second for d in every_20s] == [20, 40, 0]
    assert fires(CronSchedule("5-10/5 * * * *"), start, start + timedelta(minutes=59)) == [
        start + timedelta(minutes=5),
        start + timedelta(minutes=10),
    ]


def test_invalid_expressions_are_refused() -> None:
    for bad in ("", "61 * * * *", "* * *", "not cron"):
        with pytest.raises(ValueError, match="cron"):
            CronSchedule(bad)


def test_the_schedule_is_read_in_its_time_zone() -> None:
    schedule = CronSchedule("0 9 * * *", "Asia/Kolkata")  # UTC+05:30
    assert schedule.next_after(datetime(2025, 1, 1, tzinfo=UTC)) == datetime(
        2025, 1, 1, 3, 30, tzinfo=UTC
    )


# -- spring forward: 02:00-03:00 does not exist ----------------------------------------------


def test_fixed_time_in_the_spring_gap_runs_once_when_the_clock_jumps() -> None:
    schedule = CronSchedule("30 2 * * *", NEW_YORK)
    days = fires(
        schedule,
        datetime(2024, 3, 9, 12, tzinfo=NEW_YORK),
        datetime(2024, 3, 11, 12, tzinfo=NEW_YORK),
    )
    assert local(days, NEW_YORK) == ["03-10 03:00 EDT", "03-11 02:30 EDT"]


def test_several_fixed_times_in_the_gap_collapse_into_one_run() -> None:
    schedule = CronSchedule("*/20 2 * * *", BERLIN)
    days = fires(
        schedule, datetime(2024, 3, 31, 0, tzinfo=BERLIN), datetime(2024, 3, 31, 23, tzinfo=BERLIN)
    )
    assert local(days, BERLIN) == ["03-31 03:00 CEST"]


def test_wildcard_hours_follow_elapsed_time_across_the_gap() -> None:
    schedule = CronSchedule("30 * * * *", NEW_YORK)
    runs = fires(
        schedule,
        datetime(2024, 3, 10, 0, 45, tzinfo=NEW_YORK),
        datetime(2024, 3, 10, 4, 0, tzinfo=NEW_YORK),
    )
    assert local(runs, NEW_YORK) == ["03-10 01:30 EST", "03-10 03:30 EDT"]
    assert runs[1] - runs[0] == timedelta(hours=1)


# -- fall back: 01:00-02:00 (New York) / 02:00-03:00 (Berlin) happens twice -------------------


def test_hourly_job_runs_every_real_hour_through_fall_back() -> None:
    schedule = CronSchedule("0 * * * *", NEW_YORK)
    runs = fires(
        schedule,
        datetime(2024, 11, 3, 0, 30, tzinfo=NEW_YORK),
        datetime(2024, 11, 3, 3, 30, tzinfo=NEW_YORK),
    )
    assert local(runs, NEW_YORK) == [
        "11-03 01:00 EDT", "11-03 01:00 EST", "11-03 02:00 EST", "11-03 03:00 EST"
    ]  # fmt: skip
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(hours=1)}


def test_fixed_time_in_the_repeated_hour_runs_at_its_first_occurrence_only() -> None:
    schedule = CronSchedule("30 2 * * *", BERLIN)
    runs = fires(
        schedule,
        datetime(2024, 10, 26, 12, tzinfo=BERLIN),
        datetime(2024, 10, 28, 12, tzinfo=BERLIN),
    )
    assert local(runs, BERLIN) == ["10-27 02:30 CEST", "10-28 02:30 CET"]


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN], ids=str)
@pytest.mark.parametrize("minutes", [1, 10, 15, 60])
def test_interval_like_crons_keep_their_real_spacing_across_transitions(
    zone: ZoneInfo, minutes: int
) -> None:
    expression = "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"
    schedule = CronSchedule(expression, zone)
    transitions = {NEW_YORK: [(3, 10), (11, 3)], BERLIN: [(3, 31), (10, 27)]}[zone]
    for month, day in transitions:
        transition = datetime(2024, month, day, tzinfo=zone)
        start = transition - timedelta(hours=6)  # the clocks change at 02:00 or 03:00
        runs = fires(schedule, start, start + timedelta(hours=12))
        gaps = {b - a for a, b in itertools.pairwise(runs)}
        assert gaps == {timedelta(minutes=minutes)}, (expression, zone, transition)
        assert len(set(runs)) == len(runs)


def test_no_instant_fires_twice_for_any_schedule_around_transitions() -> None:
    zones = {
        NEW_YORK: [(3, 10), (11, 3)],
        BERLIN: [(3, 31), (10, 27)],
        ZoneInfo("Australia/Lord_Howe"): [(4, 7), (10, 6)],  # a 30-minute shift
    }
    for zone, transitions in zones.items():
        for expression in ("*/7 1-3 * * *", "0,30 2 * * *", "* 2 * * *", "59 1 * * *"):
            schedule = CronSchedule(expression, zone)
            for month, day in transitions:
                start = datetime(2024, month, day, tzinfo=zone) - timedelta(days=2)
                runs = fires(schedule, start, start + timedelta(days=4, hours=-1))
                assert runs == sorted(set(runs)), (expression, zone)
                days = {r.astimezone(zone).date() for r in runs}
                assert len(days) == 4, (expression, zone)  # ran every day, the DST day too
