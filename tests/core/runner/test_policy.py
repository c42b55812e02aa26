"""Per-job policy: overlap (skip / queue / allow), timeouts, retries; and graceful stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from chronos_core import ExecutionStatus
from chronos_core.runner import Admission, ChronosRunner, JobPolicy
from tests.core.runner.conftest import KeepingExporter

MakeRunner = Callable[..., ChronosRunner]


def blocker() -> tuple[threading.Event, threading.Event, Callable[[], None]]:
    started, release = threading.Event(), threading.Event()

    def handler() -> None:
        started.set()
        release.wait(10)

    return started, release, handler


def test_overlap_skip_records_a_skipped_execution(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    runner = make_runner()
    started, release, handler = blocker()
    runner.register("report", handler, overlap="skip")
    runner.start()
    assert runner.run_now("report") is Admission.STARTED
    assert started.wait(5)
    assert runner.run_now("report") is Admission.SKIPPED
    release.set()
    runs = exporter.wait_final(2, "report")
    assert sorted(r.status for r in runs) == [ExecutionStatus.SKIPPED, ExecutionStatus.SUCCESS]
    skipped = next(r for r in runs if r.status is ExecutionStatus.SKIPPED)
    assert skipped.error_message == "the previous run is still running (overlap=skip)"


def test_overlap_queue_runs_the_next_one_after_the_current_one(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    runner = make_runner()
    order: list[str] = []
    release = threading.Event()

    def handler() -> None:
        order.append("start")
        release.wait(10)
        order.append("end")

    runner.register("sync-data", handler, overlap="queue", max_queued=1)
    runner.start()
    runner.run_now("sync-data")
    assert runner.run_now("sync-data") is Admission.QUEUED
    assert runner.run_now("sync-data") is Admission.SKIPPED  # the queue holds one
    release.set()
    runs = exporter.wait_final(3, "sync-data")
    assert order == ["start", "end", "start", "end"]
    assert sorted(r.status for r in runs) == ["skipped", "success", "success"]


def test_overlap_allow_runs_side_by_side(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    runner = make_runner()
    barrier = threading.Barrier(3, timeout=5)
    runner.register("fan-out", barrier.wait, overlap="allow")
    runner.start()
    for _ in range(3):
        assert runner.run_now("fan-out") is Admission.STARTED
    runs = exporter.wait_final(3, "fan-out")
    assert [r.status for r in runs] == ["success"] * 3  # all three met at the barrier


def test_sync_timeout_records_timeout_and_frees_the_runner(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    runner = make_runner()
    release = threading.Event()
    runner.register("slow", lambda: release.wait(10), timeout=0.2, retries=2)
    runner.start()
    runner.run_now("slow")
    [run] = exporter.wait_final(1, "slow")
    release.set()
    assert run.status is ExecutionStatus.TIMEOUT
    assert "timed out after 0.2s" in (run.error_message or "")
    assert run.attempt == 1  # a timed-out attempt is not retried
    assert runner.wait_idle(5)


async def test_async_timeout_cancels_the_handler(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    runner = make_runner()
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner.register("slow-async", slow, timeout=0.2)
    runner.start()
    runner.run_now("slow-async")
    [run] = await asyncio.to_thread(exporter.wait_final, 1, "slow-async")
    assert run.status is ExecutionStatus.TIMEOUT
    assert cancelled.is_set()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_retries_record_each_attempt(
    make_runner: MakeRunner, exporter: KeepingExporter, kind: str
) -> None:
    runner = make_runner()
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        print(f"attempt {len(calls)}")
        if len(calls) < 3:
            raise ConnectionError("database unavailable")

    async def flaky_async() -> None:
        flaky()

    policy = JobPolicy(retries=3, retry_backoff=0.01, retry_jitter=False)
    runner.register("flaky", flaky if kind == "sync" else flaky_async, policy=policy)
    runner.start()
    runner.run_now("flaky")
    runs = exporter.wait_final(3, "flaky")
    assert [(r.attempt, r.status) for r in runs] == [
        (1, "retrying"), (2, "retrying"), (3, "success")
    ]  # fmt: skip
    assert [r.stdout for r in runs] == ["attempt 1\n", "attempt 2\n", "attempt 3\n"]
    assert runs[0].error_type == "ConnectionError"
    assert len({r.exec_id for r in runs}) == 3  # the server dedupes by execId
    base = {r.exec_id.rsplit(":", 1)[0] for r in runs}
    assert base == {runs[0].metadata["run"]}


def test_retries_exhausted_end_failed(make_runner: MakeRunner, exporter: KeepingExporter) -> None:
    runner = make_runner()

    def broken() -> None:
        raise ValueError("bad input")

    runner.register("broken", broken, retries=1, retry_backoff=0)
    runner.start()
    runner.run_now("broken")
    runs = exporter.wait_final(2, "broken")
    assert [r.status for r in runs] == ["retrying", "failed"]
    assert runs[-1].error_message == "bad input"
    assert 'raise ValueError("bad input")' in (runs[-1].code_snippet or "")


def test_handler_failures_never_escape_the_runner(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    runner = make_runner()

    def exits() -> None:
        raise SystemExit(3)

    runner.register("exits", exits)
    runner.register("fine", lambda: None)
    runner.start()
    runner.run_now("exits")
    [run] = exporter.wait_final(1, "exits")
    assert (run.status, run.exit_code) == (ExecutionStatus.FAILED, 3)
    runner.run_now("fine")
    assert exporter.wait_final(1, "fine")[0].status is ExecutionStatus.SUCCESS


def test_stop_waits_for_running_runs(make_runner: MakeRunner, exporter: KeepingExporter) -> None:
    runner = make_runner()
    started = threading.Event()

    def short() -> None:
        started.set()
        time.sleep(0.3)

    runner.register("short", short)
    runner.start()
    runner.run_now("short")
    assert started.wait(5)
    assert runner.stop(timeout=5) is True
    [run] = exporter.final("short")
    assert run.status is ExecutionStatus.SUCCESS
    assert runner.run_now("short") is Admission.STOPPING  # no new runs after stop


def test_stop_timeout_records_unfinished_runs_as_cancelled(
    make_runner: MakeRunner, exporter: KeepingExporter
) -> None:
    runner = make_runner()
    started, release, handler = blocker()

    async def forever() -> None:
        await asyncio.sleep(60)

    runner.register("stuck-sync", handler)
    runner.register("stuck-async", forever)
    runner.register("queued", handler, overlap="queue")
    runner.start()
    runner.run_now("stuck-sync")
    runner.run_now("stuck-async")
    assert started.wait(5)
    t0 = time.monotonic()
    assert runner.stop(timeout=0.3) is False
    assert time.monotonic() - t0 < 5
    release.set()
    statuses = {r.job_id: r.status for r in exporter.final()}
    assert statuses == {"stuck-sync": "cancelled", "stuck-async": "cancelled"}
