"""Real APScheduler 3 schedulers, instrumented, reporting to the real server over loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ProcessPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from chronos_core import BatchExporter, ChronosClient, ExecutionStatus, RunMode, Source
from chronos_integrations.apscheduler import SchedulerInstrumentation, instrument, uninstrument
from tests.integrations.apscheduler import jobs
from tests.integrations.apscheduler.conftest import ListSink
from tests.support.live_server import ThreadedServer

JOBS = "tests.integrations.apscheduler.jobs"


@pytest.fixture
def scheduler() -> Iterator[BackgroundScheduler]:
    scheduler = BackgroundScheduler(timezone="UTC")
    yield scheduler
    if scheduler.running:
        scheduler.shutdown(wait=True)
    uninstrument(scheduler)


def outcomes(scheduler: Any) -> list[JobExecutionEvent]:
    """What APScheduler itself saw of each run (return value or exception)."""
    seen: list[JobExecutionEvent] = []
    scheduler.add_listener(seen.append, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return seen


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_jobs_are_registered_with_their_schedules(
    scheduler: BackgroundScheduler, exporter: BatchExporter, live_server: ThreadedServer
) -> None:
    scheduler.add_job(
        jobs.report,
        "cron",
        day_of_week="mon-fri",
        hour=6,
        id="weekday-report",
        timezone="Europe/Paris",
    )
    scheduler.add_job(jobs.cleanup, "interval", minutes=10)  # generated id
    at = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
    scheduler.add_job(jobs.report, "date", run_date=at, id="one-off")
    chronos = instrument(scheduler, exporter)
    scheduler.start()
    scheduler.add_job(jobs.cleanup, "cron", day_of_week="sun", minute=5, id="sunday-cleanup")
    assert chronos.flush_registrations(10)

    registered = {job.id: job for job in live_server.jobs()}
    assert set(registered) == {"weekday-report", f"{JOBS}.cleanup", "one-off", "sunday-cleanup"}
    weekday = registered["weekday-report"]
    assert (weekday.schedule, weekday.timezone) == ("0 6 * * 1-5", "Europe/Paris")
    assert weekday.run_mode is RunMode.RECURRING
    interval = registered[f"{JOBS}.cleanup"]
    assert (interval.schedule, interval.interval_seconds) == ("", 600.0)
    once = registered["one-off"]
    assert (once.run_mode, once.run_at) == (RunMode.ONCE, at)
    assert registered["sunday-cleanup"].schedule == "5 * * * 0"
    assert weekday.signature_hash
    assert weekday.source is Source.APSCHEDULER


def test_modified_and_rescheduled_jobs_are_registered_again(
    scheduler: BackgroundScheduler, exporter: BatchExporter, live_server: ThreadedServer
) -> None:
    scheduler.start()
    chronos = instrument(scheduler, exporter)
    job = scheduler.add_job(jobs.report, "cron", hour=1, id="nightly")
    assert chronos.flush_registrations(10)
    job.reschedule("cron", hour=2, day_of_week="sat")
    assert chronos.flush_registrations(10)
    [stored] = [j for j in live_server.jobs() if j.id == "nightly"]
    assert stored.schedule == "0 2 * * 6"
    job.modify(name="Nightly report")
    assert chronos.flush_registrations(10)
    [stored] = [j for j in live_server.jobs() if j.id == "nightly"]
    assert stored.name == "Nightly report"


def test_same_function_scheduled_twice_without_ids_gets_two_stable_ids(
    scheduler: BackgroundScheduler, sink: ListSink
) -> None:
    first = scheduler.add_job(jobs.cleanup, "interval", minutes=1)
    second = scheduler.add_job(jobs.cleanup, "interval", minutes=2)
    chronos = instrument(scheduler, sink, register=False)
    first_id, second_id = chronos.job_id_of(first), chronos.job_id_of(second)
    assert first_id == f"{JOBS}.cleanup"
    assert second_id.startswith(f"{JOBS}.cleanup@")
    assert second_id != first_id
    # The suffix comes from the trigger, not from APScheduler's random id.
    again = SchedulerInstrumentation(
        BackgroundScheduler(),
        sink,
        registrar=None,
        capture_console=False,
        max_log_bytes=100,
        job_id=None,
        labels=[],
    )
    assert again.job_id_of(first) == first_id
    assert again.job_id_of(second) == second_id


def test_each_run_is_one_execution_with_timing_output_and_result_unchanged(
    scheduler: BackgroundScheduler, live_server: ThreadedServer
) -> None:
    exporter = BatchExporter(
        api_key=live_server.api_key,
        endpoint=live_server.url,
        flush_interval=0.05,
        capture_console=True,
    )
    seen = outcomes(scheduler)
    instrument(scheduler, exporter)
    scheduler.start()
    before = datetime.now(UTC)
    scheduler.add_job(jobs.slow_and_chatty, id="chatty")
    scheduler.add_job(jobs.broken, id="broken")
    wait_until(lambda: len(seen) == 2)
    after = datetime.now(UTC)
    assert exporter.flush(10)

    [ok] = live_server.wait_for_executions("chatty", 1)
    assert ok.status is ExecutionStatus.SUCCESS
    assert before <= ok.started_at
    assert ok.finished_at is not None
    assert ok.finished_at <= after
    assert ok.duration_ms is not None
    assert 100 <= ok.duration_ms < 1000
    assert ok.stdout == "starting\n"
    assert ok.stderr == "warning: disk almost full\n"
    assert ok.source is Source.APSCHEDULER
    assert ok.scheduled_for is not None
    [failed] = live_server.wait_for_executions("broken", 1)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error_type == "ValueError"
    assert failed.error_message == "the input file is empty"
    assert failed.error_stack
    assert "raise ValueError" in failed.error_stack
    assert failed.code_snippet
    assert 'raise ValueError("the input file is empty")' in (failed.code_snippet)
    assert failed.stdout == "about to fail\n"
    results = {e.job_id: e for e in seen}
    assert results["chatty"].retval == 42
    assert isinstance(results["broken"].exception, ValueError)
    exporter.shutdown(5)


def test_missed_run_is_reported_with_its_scheduled_time(
    scheduler: BackgroundScheduler, exporter: BatchExporter, live_server: ThreadedServer
) -> None:
    instrument(scheduler, exporter, register=False)
    scheduler.start()
    due = datetime.now(UTC) - timedelta(minutes=5)
    scheduler.add_job(jobs.report, "date", run_date=due, id="late", misfire_grace_time=1)
    [missed] = live_server.wait_for_executions("late", 1)
    assert missed.status is ExecutionStatus.MISSED
    assert missed.scheduled_for == due.replace(microsecond=due.microsecond // 1000 * 1000)
    assert "missed" in (missed.error_message or "")


def test_run_refused_for_max_instances_is_a_skipped_execution(
    scheduler: BackgroundScheduler, sink: ListSink
) -> None:
    instrument(scheduler, sink, register=False)
    scheduler.start()
    scheduler.add_job(
        jobs.sleeper,
        "interval",
        seconds=0.2,
        args=[1.0],
        id="busy",
        max_instances=1,
        next_run_time=datetime.now(UTC),
    )
    events = sink.wait_for(2)
    statuses = [e.status for e in events]
    assert ExecutionStatus.SKIPPED in statuses
    skipped = next(e for e in events if e.status is ExecutionStatus.SKIPPED)
    assert skipped.job_id == "busy"
    assert skipped.scheduled_for is not None
    assert "max_instances=1" in (skipped.error_message or "")


def test_coroutine_jobs_on_the_asyncio_scheduler(live_server: ThreadedServer) -> None:
    exporter = BatchExporter(
        api_key=live_server.api_key,
        endpoint=live_server.url,
        flush_interval=0.05,
        capture_console=True,
    )

    async def main() -> list[JobExecutionEvent]:
        scheduler = AsyncIOScheduler(timezone="UTC")
        seen = outcomes(scheduler)
        instrument(scheduler, exporter)
        scheduler.add_job(jobs.async_report, id="async-report")
        scheduler.add_job(jobs.async_broken, id="async-broken")
        scheduler.add_job(jobs.report, id="sync-on-asyncio")
        scheduler.start()
        for _ in range(200):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.02)
        scheduler.shutdown(wait=False)
        uninstrument(scheduler)
        return seen

    seen = asyncio.run(main())
    assert {e.job_id: e.retval for e in seen if e.code == EVENT_JOB_EXECUTED} == {
        "async-report": "async done",
        "sync-on-asyncio": "done",
    }
    assert exporter.flush(10)
    [run] = live_server.wait_for_executions("async-report", 1)
    assert run.status is ExecutionStatus.SUCCESS
    assert run.stdout == "async report\n"
    assert run.duration_ms is not None
    assert run.duration_ms >= 50
    [failed] = live_server.wait_for_executions("async-broken", 1)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error_type == "KeyError"
    assert failed.code_snippet
    assert "raise KeyError" in failed.code_snippet
    [sync] = live_server.wait_for_executions("sync-on-asyncio", 1)
    assert sync.stdout == "report built\n"
    exporter.shutdown(5)


def test_blocking_scheduler(sink: ListSink) -> None:
    scheduler = BlockingScheduler(timezone="UTC")
    instrument(scheduler, sink, register=False)
    scheduler.add_job(jobs.report, id="blocking")
    scheduler.add_job(
        scheduler.shutdown,
        "date",
        run_date=datetime.now(UTC) + timedelta(seconds=0.5),
        kwargs={"wait": False},
        id="stop",
    )
    runner = threading.Thread(target=scheduler.start)
    runner.start()
    runner.join(20)
    assert not runner.is_alive()
    by_job = {e.job_id: e for e in sink.events}
    assert by_job["blocking"].status is ExecutionStatus.SUCCESS


def test_runs_in_a_process_pool_are_reported_from_events(
    scheduler: BackgroundScheduler, sink: ListSink
) -> None:
    scheduler.add_executor(ProcessPoolExecutor(1), "processes")
    instrument(scheduler, sink, register=False)
    scheduler.start()
    scheduler.add_job(jobs.cleanup, id="in-pool-ok", executor="processes")
    scheduler.add_job(jobs.broken, id="in-pool-broken", executor="processes")
    events = {e.job_id: e for e in sink.wait_for(2, timeout=30)}
    assert events["in-pool-ok"].status is ExecutionStatus.SUCCESS
    assert events["in-pool-broken"].status is ExecutionStatus.FAILED
    assert events["in-pool-broken"].error_type == "ValueError"
    assert "timing" in events["in-pool-ok"].metadata


def test_a_failing_hook_leaves_the_jobs_results_unchanged(
    scheduler: BackgroundScheduler, sink: ListSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("chronos internals are broken")

    monkeypatch.setattr(SchedulerInstrumentation, "_capture", explode)
    seen = outcomes(scheduler)
    instrument(scheduler, sink, register=False)
    scheduler.start()
    scheduler.add_job(jobs.slow_and_chatty, id="chatty")
    scheduler.add_job(jobs.broken, id="broken")
    scheduler.add_job(
        jobs.report,
        "date",
        run_date=datetime.now(UTC) - timedelta(minutes=1),
        misfire_grace_time=1,
        id="late",
    )
    wait_until(lambda: len(seen) == 2)
    results = {e.job_id: e for e in seen}
    assert results["chatty"].retval == 42
    assert type(results["broken"].exception) is ValueError
    assert str(results["broken"].exception) == "the input file is empty"
    assert sink.events == []


class BrokenSink:
    def record(self, event: Any) -> bool:
        raise RuntimeError("sink is broken")


def test_a_raising_sink_leaves_the_jobs_results_unchanged(
    scheduler: BackgroundScheduler,
) -> None:
    seen = outcomes(scheduler)
    instrument(scheduler, BrokenSink(), register=False)
    scheduler.start()
    scheduler.add_job(jobs.report, id="report")
    scheduler.add_job(jobs.broken, id="broken")
    wait_until(lambda: len(seen) == 2)
    results = {e.job_id: e for e in seen}
    assert results["report"].retval == "done"
    assert isinstance(results["broken"].exception, ValueError)


def test_uninstrument_removes_every_hook(scheduler: BackgroundScheduler, sink: ListSink) -> None:
    seen = outcomes(scheduler)
    chronos = instrument(scheduler, sink, register=False)
    assert instrument(scheduler, sink) is chronos  # idempotent
    scheduler.start()
    scheduler.add_job(jobs.report, id="first")
    wait_until(lambda: len(seen) == 1)
    uninstrument(scheduler)
    scheduler.add_job(jobs.report, id="second")
    wait_until(lambda: len(seen) == 2)
    assert [e.job_id for e in sink.wait_for(1)] == ["first"]
    executor = scheduler._lookup_executor("default")
    assert "submit_job" not in vars(executor)


def test_registration_never_blocks_when_the_server_is_unreachable(
    scheduler: BackgroundScheduler, sink: ListSink, black_hole: Any
) -> None:
    client = ChronosClient(api_key="k", endpoint=black_hole.url, request_timeout=30)
    chronos = instrument(scheduler, sink, client=client)
    started = time.monotonic()
    for n in range(20):
        scheduler.add_job(jobs.report, "cron", hour=n, id=f"job-{n}")
    scheduler.start()
    assert time.monotonic() - started < 2
    chronos.uninstall(timeout=0.2)
