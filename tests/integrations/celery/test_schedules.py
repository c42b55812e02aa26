"""Beat schedules: conversion to cron/interval, registration, and `scheduledFor` on beat runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from celery.beat import Service
from celery.schedules import crontab, schedule, solar
from croniter import croniter

from chronos_core import BatchExporter, RunMode
from chronos_integrations.celery import cron_from_crontab, instrument
from chronos_integrations.celery._schedules import (
    BeatEntry,
    NotConvertible,
    entry_job_ids,
    job_definition,
)
from tests.integrations.celery.conftest import WorkerFactory
from tests.support.live_server import ThreadedServer

CRONTAB_CASES = [
    (crontab(), "* * * * *"),
    (crontab(minute=0), "0 * * * *"),
    (crontab(minute="*/15"), "*/15 * * * *"),
    (crontab(minute="5,35", hour="9-17"), "5,35 9-17 * * *"),
    (crontab(minute=0, hour="*/3"), "0 */3 * * *"),
    (crontab(minute=0, hour="0,8-17/2"), "0 0,8,10,12,14,16 * * *"),
    # Celery's third positional argument is the day of week; cron's is the day of month.
    (crontab(30, 7, 1), "30 7 * * 1"),
    (crontab(minute=0, hour=0, day_of_week="sun"), "0 0 * * 0"),
    (crontab(minute=0, hour=0, day_of_week="mon-fri"), "0 0 * * 1-5"),
    (crontab(minute=0, hour=0, day_of_week="sat,sun"), "0 0 * * 0,6"),
    (crontab(minute=0, hour=0, day_of_week="*/2"), "0 0 * * */2"),
    (crontab(minute=0, hour=0, day_of_month="1"), "0 0 1 * *"),
    (
        crontab(minute=0, hour=0, day_of_month="2-30/2"),
        "0 0 2,4,6,8,10,12,14,16,18,20,22,24,26,28,30 * *",
    ),
    (crontab(minute=0, hour=0, day_of_month=11, month_of_year=5), "0 0 11 5 *"),
    (crontab(minute=0, hour=0, month_of_year="*/3"), "0 0 * */3 *"),
    # Both days restricted: Celery wants both to match ("the first Monday"); cron's # form.
    (crontab(minute=0, hour=9, day_of_week=1, day_of_month="1-7"), "0 9 * * 1#1"),
    (
        crontab(minute=0, hour=9, day_of_week="mon,fri", day_of_month="1-7,15-21"),
        "0 9 * * 1#1,5#1,1#3,5#3",
    ),
]


@pytest.mark.parametrize(("celery_schedule", "cron"), CRONTAB_CASES)
def test_crontab_becomes_the_equivalent_cron_string(celery_schedule: crontab, cron: str) -> None:
    assert cron_from_crontab(celery_schedule) == cron
    assert croniter.is_valid(cron)


@pytest.mark.parametrize(("celery_schedule", "cron"), CRONTAB_CASES)
def test_the_cron_string_fires_when_celery_would(celery_schedule: crontab, cron: str) -> None:
    # Walk a year of minutes at cron's firing times and check each against Celery's own sets.
    start = datetime(2025, 1, 1, tzinfo=UTC)
    times = croniter(cron, start)
    for _ in range(200):
        moment = times.get_next(datetime)
        assert moment.minute in celery_schedule.minute
        assert moment.hour in celery_schedule.hour
        assert moment.day in celery_schedule.day_of_month
        assert moment.month in celery_schedule.month_of_year
        assert moment.isoweekday() % 7 in celery_schedule.day_of_week


def test_days_that_cron_cannot_express_are_refused() -> None:
    with pytest.raises(NotConvertible, match="both to match"):
        cron_from_crontab(crontab(minute=0, hour=0, day_of_week=5, day_of_month=13))


def test_intervals_and_timezone(celery_app: Celery) -> None:
    cron_job = job_definition(BeatEntry("e", "t.add", crontab(minute=0)), "job", celery_app)
    assert cron_job is not None
    assert cron_job.timezone == "Europe/Paris"
    assert cron_job.run_mode is RunMode.RECURRING
    for value in (30, 30.0, timedelta(seconds=30), schedule(timedelta(seconds=30))):
        job = job_definition(BeatEntry("e", "t.add", value), "job", celery_app)
        assert job is not None
        assert (job.schedule, job.interval_seconds) == ("", 30.0)
    unconvertible = crontab(minute=0, hour=0, day_of_week=5, day_of_month=13)
    assert job_definition(BeatEntry("e", "t.add", unconvertible), "job", celery_app) is None


def test_solar_is_registered_as_a_daily_job(celery_app: Celery) -> None:
    pytest.importorskip("ephem", reason="solar schedules need celery[solar] (ephem)")
    sun = job_definition(BeatEntry("e", "t.add", solar("sunset", 48.85, 2.35)), "j", celery_app)
    assert sun is not None
    assert sun.interval_seconds == 86_400
    assert "sunset" in (sun.description or "")


def test_two_entries_of_one_task_are_two_jobs() -> None:
    entries = [
        BeatEntry("hourly", "t.add", 3600),
        BeatEntry("daily", "t.add", 86400),
        BeatEntry("cleanup", "t.noop", 60),
    ]
    assert entry_job_ids(entries, lambda name: name) == {
        "hourly": "t.add:hourly",
        "daily": "t.add:daily",
        "cleanup": "t.noop",
    }


def test_beat_registers_its_schedule_and_stamps_scheduled_for(
    celery_app: Celery,
    exporter: BatchExporter,
    worker: WorkerFactory,
    live_server: ThreadedServer,
    tmp_path: object,
) -> None:
    celery_app.conf.beat_schedule = {
        "every-second": {"task": "t.noop", "schedule": 1.0},
        "weekday-mornings": {"task": "t.add", "schedule": crontab(30, 7, "mon-fri")},
    }
    instrument(celery_app, exporter=exporter)
    beat = Service(celery_app, schedule_filename=f"{tmp_path}/beat-schedule", max_interval=0.2)
    thread = threading.Thread(target=beat.start, daemon=True)
    with worker(pool="solo"):
        thread.start()
        try:
            events = live_server.wait_for_executions("t.noop", 2, timeout=20)
        finally:
            beat.stop()
            thread.join(10)
    jobs = {job.id: job for job in live_server.jobs()}
    assert jobs["t.add"].schedule == "30 7 * * 1-5"
    assert jobs["t.add"].timezone == "Europe/Paris"
    assert jobs["t.noop"].interval_seconds == 1.0
    assert len(events) >= 2
    for event in events:
        assert event.scheduled_for is not None
        assert event.metadata == {"beatEntry": "every-second"}
        lateness = event.started_at - event.scheduled_for
        assert timedelta(0) <= lateness < timedelta(seconds=5)
