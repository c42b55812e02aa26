"""Local mode: the runner fires its own jobs on a manual clock, each run recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chronos_core import ConnectError, ExecutionStatus, Source
from chronos_core.runner import ChronosRunner, ManualClock
from tests.core.runner.conftest import KeepingExporter

MakeRunner = Callable[..., ChronosRunner]


def test_cron_jobs_fire_at_their_due_times(
    make_runner: MakeRunner, clock: ManualClock, exporter: KeepingExporter
) -> None:
    runner = make_runner(clock=clock)
    ran: list[datetime] = []

    @runner.job("every-15", schedule="*/15 * * * *")
    def every_15() -> None:
        ran.append(clock.now())
        print("tick")

    runner.start()
    clock.run_until(clock.now() + timedelta(hours=1), after_each=runner.wait_idle)
    runs = exporter.wait_final(4, "every-15")
    assert [r.scheduled_for for r in runs] == [
        datetime(2025, 1, 6, 8, m, tzinfo=UTC) for m in (15, 30, 45)
    ] + [datetime(2025, 1, 6, 9, 0, tzinfo=UTC)]
    assert ran == [r.scheduled_for for r in runs]
    assert {r.status for r in runs} == {ExecutionStatus.SUCCESS}
    assert {r.source for r in runs} == {Source.RUNNER}
    assert {r.stdout for r in runs} == {"tick\n"}
    assert len({r.exec_id for r in runs}) == 4
    # Each run also reported `running` under the same execId, which the server merges.
    running = [e for e in exporter.events if e.status is ExecutionStatus.RUNNING]
    assert {e.exec_id for e in running} == {r.exec_id for r in runs}


def test_a_job_fires_in_its_own_time_zone_across_spring_forward(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    clock = ManualClock(datetime(2024, 3, 30, 12, tzinfo=berlin))
    runner = make_runner(clock=clock, timezone="America/New_York")
    runner.register("nightly", lambda: None, schedule="30 2 * * *", timezone="Europe/Berlin")
    runner.register("hourly-ny", lambda: None, schedule="0 * * * *")  # the runner's zone
    runner.start()
    clock.run_until(datetime(2024, 4, 1, 12, tzinfo=berlin), after_each=runner.wait_idle)
    nightly = [r.scheduled_for for r in exporter.final("nightly")]
    assert [n.astimezone(berlin).strftime("%d %H:%M %Z") for n in nightly] == [
        "31 03:00 CEST",  # 02:30 did not exist that night
        "01 02:30 CEST",
    ]
    hourly = [r.scheduled_for for r in exporter.final("hourly-ny")]
    assert len(hourly) == 47  # 47 real hours: Berlin lost one
    assert all(h.astimezone(ZoneInfo("America/New_York")).minute == 0 for h in hourly)


def test_hourly_job_runs_each_real_hour_once_across_fall_back(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    new_york = ZoneInfo("America/New_York")
    clock = ManualClock(datetime(2024, 11, 2, 23, 30, tzinfo=new_york))
    runner = make_runner(clock=clock, timezone="America/New_York")
    runner.register("hourly", lambda: None, schedule="0 * * * *")
    runner.register("at-0130", lambda: None, schedule="30 1 * * *")
    runner.start()
    clock.run_until(datetime(2024, 11, 3, 4, 0, tzinfo=new_york), after_each=runner.wait_idle)
    hourly = [r.scheduled_for for r in exporter.final("hourly")]
    assert [h.astimezone(new_york).strftime("%H:%M %Z") for h in hourly] == [
        "00:00 EDT", "01:00 EDT", "01:00 EST", "02:00 EST", "03:00 EST", "04:00 EST"
    ]  # fmt: skip
    [once] = [r.scheduled_for for r in exporter.final("at-0130")]
    assert once.astimezone(new_york).strftime("%H:%M %Z") == "01:30 EDT"


def test_once_with_a_cron_fires_at_the_first_match_only(
    make_runner: MakeRunner, clock: ManualClock, exporter: KeepingExporter
) -> None:
    runner = make_runner(clock=clock)
    runner.register("first-match", lambda: None, schedule="0 * * * *", run_mode="once")
    runner.start()
    clock.run_until(clock.now() + timedelta(hours=5), after_each=runner.wait_idle)
    [run] = exporter.final("first-match")
    assert run.scheduled_for == datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    assert runner.next_due("first-match") is None


def test_run_at_fires_once_and_a_stale_run_at_not_at_all(
    make_runner: MakeRunner, clock: ManualClock, exporter: KeepingExporter
) -> None:
    runner = make_runner(clock=clock, misfire_grace=60)
    at = clock.now() + timedelta(minutes=90)
    runner.register("one-off", lambda: None, run_at=at.isoformat())
    runner.register("slightly-late", lambda: None, run_at=clock.now() - timedelta(seconds=30))
    runner.register("long-gone", lambda: None, run_at=clock.now() - timedelta(hours=2))
    runner.start()
    clock.run_until(clock.now() + timedelta(days=2), after_each=runner.wait_idle)
    [run] = exporter.final("one-off")
    assert run.scheduled_for == at
    assert len(exporter.final("slightly-late")) == 1
    assert exporter.final("long-gone") == []


def test_due_times_missed_while_the_runner_could_not_fire_run_once(
    make_runner: MakeRunner, clock: ManualClock, exporter: KeepingExporter
) -> None:
    runner = make_runner(clock=clock)
    runner.register("minutely", lambda: None, schedule="* * * * *")
    runner.start()
    clock.settle()
    clock.advance(timedelta(minutes=10, seconds=30))  # a suspended laptop wakes up
    [run] = exporter.wait_final(1, "minutely")
    assert run.scheduled_for == datetime(2025, 1, 6, 8, 10, tzinfo=UTC)
    assert run.metadata["coalesced"] == 9
    clock.settle()
    assert runner.next_due("minutely") == datetime(2025, 1, 6, 8, 11, tzinfo=UTC)


def test_jobs_registered_through_the_client_are_scheduled(
    make_runner: MakeRunner, clock: ManualClock, exporter: KeepingExporter
) -> None:
    # The original SDK's flow, with the server down: registration fails, scheduling works.
    runner = make_runner(clock=clock, api_key="chr_unused", endpoint="http://127.0.0.1:9")
    runner.register("job-1", lambda: None)
    with pytest.raises(ConnectError):
        runner.client.register_jobs(
            [{"id": "job-1", "name": "Reports", "schedule": "0 * * * *", "runMode": "recurring"}],
            timeout=0.2,
        )
    runner.start()
    assert runner.next_due("job-1") == datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def test_jobs_added_after_start_are_scheduled(
    make_runner: MakeRunner, clock: ManualClock, exporter: KeepingExporter
) -> None:
    runner = make_runner(clock=clock).start()
    clock.settle()
    runner.register("late", lambda: None, schedule="5 8 * * *")
    clock.run_until(clock.now() + timedelta(minutes=10), after_each=runner.wait_idle)
    [run] = exporter.wait_final(1, "late")
    assert run.scheduled_for == datetime(2025, 1, 6, 8, 5, tzinfo=UTC)
