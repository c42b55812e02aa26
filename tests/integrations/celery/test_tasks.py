"""Task runs on real in-process workers (solo and threads pools) against the real server."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Retry

from chronos_core import BatchExporter, ExecutionEvent, ExecutionStatus, RunCapture
from chronos_integrations.celery import CeleryIntegration, instrument, uninstrument
from tests.integrations.celery.conftest import WorkerFactory
from tests.support.live_server import ThreadedServer


def _only(server: ThreadedServer, job_id: str, exec_id: str | None = None):  # type: ignore[no-untyped-def]
    found = server.wait_for_executions(job_id, 1)
    assert len(found) == 1, found
    if exec_id is not None:
        assert found[0].exec_id == exec_id
    return found[0]


@pytest.mark.usefixtures("instrumented")
def test_a_successful_task_is_one_execution_with_its_task_id(
    celery_app: Celery, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    with worker(pool="solo") as running:
        result = celery_app.tasks["t.add"].delay(2, 3)
        assert result.get(timeout=10) == 5
    event = _only(live_server, "t.add", result.id)
    assert event.status is ExecutionStatus.SUCCESS
    assert event.attempt == 1
    assert event.duration_ms is not None
    assert event.duration_ms >= 0
    assert event.finished_at is not None
    assert event.finished_at >= event.started_at
    assert event.queue == celery_app.conf.task_default_queue
    assert event.worker == running.hostname
    assert event.pid == os.getpid()  # the solo pool runs tasks in the worker's process
    assert event.host == socket.gethostname()
    assert event.metadata == {}  # task arguments are off by default


@pytest.mark.usefixtures("instrumented")
def test_a_long_task_shows_as_running_until_it_ends(
    celery_app: Celery, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    with worker(pool="solo"):
        result = celery_app.tasks["t.sleep"].delay(2.5)
        [running] = live_server.wait_for_executions("t.sleep", 1, final=False, timeout=10)
        assert running.exec_id == result.id
        assert running.status is ExecutionStatus.RUNNING
        assert result.get(timeout=10) == 2.5
    [done] = live_server.wait_for_executions("t.sleep", 1)
    assert done.status is ExecutionStatus.SUCCESS
    assert done.duration_ms is not None
    assert done.duration_ms >= 2500


@pytest.mark.usefixtures("instrumented")
def test_a_failing_task_carries_its_error_stack_and_snippet(
    celery_app: Celery, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    with worker(pool="solo"):
        result = celery_app.tasks["t.fail"].delay("disk full")
        with pytest.raises(ValueError, match="disk full"):
            result.get(timeout=10)
    event = _only(live_server, "t.fail", result.id)
    assert event.status is ExecutionStatus.FAILED
    assert event.error_type == "ValueError"
    assert event.error_message == "disk full"
    assert event.error_stack is not None
    assert "raise ValueError(message)" in event.error_stack
    assert event.code_snippet is not None
    assert "raise ValueError(message)" in event.code_snippet


@pytest.mark.usefixtures("instrumented")
def test_each_retry_is_a_new_attempt_of_the_same_task(
    celery_app: Celery, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    with worker(pool="solo"):
        result = celery_app.tasks["t.flaky"].delay(2)
        assert result.get(timeout=20) == 2
    events = sorted(live_server.wait_for_executions("t.flaky", 3), key=lambda e: e.attempt)
    assert [(e.exec_id, e.attempt, e.status) for e in events] == [
        (result.id, 1, ExecutionStatus.RETRYING),
        (f"{result.id}:2", 2, ExecutionStatus.RETRYING),
        (f"{result.id}:3", 3, ExecutionStatus.SUCCESS),
    ]
    assert events[0].error_type == "ConnectionError"
    assert events[0].error_message == "attempt 1"


@pytest.mark.usefixtures("instrumented")
def test_console_output_belongs_to_its_own_task_in_a_thread_pool(
    celery_app: Celery, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    markers = [f"task-{index}" for index in range(6)]
    with worker(pool="threads", concurrency=4):
        results = [celery_app.tasks["t.echo"].delay(m, 5, 0.02) for m in markers]
        assert [r.get(timeout=20) for r in results] == markers
    events = {e.exec_id: e for e in live_server.wait_for_executions("t.echo", len(markers))}
    assert len(events) == len(markers)
    for marker, result in zip(markers, results, strict=True):
        event = events[result.id]
        assert event.stdout == "".join(f"{marker} line {i}\n" for i in range(5))
        assert event.stderr == f"{marker} warning\n"


def test_task_arguments_are_recorded_redacted_when_turned_on(
    celery_app: Celery, exporter: BatchExporter, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    instrument(celery_app, exporter=exporter, capture_args=True, max_args_bytes=64)
    with worker(pool="solo"):
        secret = celery_app.tasks["t.echo"].delay("password=hunter2 " + "x" * 200, 0)
        secret.get(timeout=10)
    event = _only(live_server, "t.echo", secret.id)
    recorded = event.metadata["args"]
    assert "hunter2" not in recorded
    assert len(recorded.encode()) <= 64


def test_job_id_is_the_task_name_unless_overridden(
    celery_app: Celery, exporter: BatchExporter, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    instrument(
        celery_app,
        exporter=exporter,
        job_id=lambda task: "adder" if task.name == "t.add" else None,
    )
    with worker(pool="solo"):
        added = celery_app.tasks["t.add"].delay(1, 1)
        custom = celery_app.tasks["t.custom"].delay()
        noop = celery_app.tasks["t.noop"].delay()
        for result in (added, custom, noop):
            result.get(timeout=10)
    assert _only(live_server, "adder").exec_id == added.id
    assert _only(live_server, "custom-job").exec_id == custom.id
    assert _only(live_server, "t.noop").exec_id == noop.id


@pytest.mark.usefixtures("instrumented")
def test_a_task_revoked_before_it_starts_is_cancelled(
    celery_app: Celery, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    with worker(pool="solo"):
        result = celery_app.tasks["t.add"].apply_async((1, 2), countdown=2)
        celery_app.control.revoke(result.id)
        event = _only(live_server, "t.add", result.id)
    assert event.status is ExecutionStatus.CANCELLED
    assert event.error_message == "revoked before it started"


def test_a_failing_hook_leaves_task_results_unchanged(
    celery_app: Celery,
    exporter: BatchExporter,
    worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the SDK")

    instrument(celery_app, exporter=exporter)
    monkeypatch.setattr(RunCapture, "start", broken)
    monkeypatch.setattr(RunCapture, "finish", broken)
    monkeypatch.setattr(BatchExporter, "record", broken)
    monkeypatch.setattr(BatchExporter, "record_deferred", broken)
    with worker(pool="solo"):
        assert celery_app.tasks["t.add"].delay(20, 22).get(timeout=10) == 42
        with pytest.raises(ValueError, match="still mine"):
            celery_app.tasks["t.fail"].delay("still mine").get(timeout=10)
        assert celery_app.tasks["t.flaky"].delay(1).get(timeout=10) == 1


def test_an_unreachable_server_does_not_change_or_stall_tasks(
    celery_app: Celery, worker: WorkerFactory, black_hole: object
) -> None:
    exporter = BatchExporter(api_key="chr_test", endpoint=black_hole.url, export_timeout=60)  # type: ignore[attr-defined]
    instrument(celery_app, exporter=exporter, flush_timeout=0.2)
    with worker(pool="solo"):
        results = [celery_app.tasks["t.add"].delay(i, i) for i in range(20)]
        assert [r.get(timeout=10) for r in results] == [2 * i for i in range(20)]
    assert exporter.stats().sent == 0
    exporter.shutdown(0.1)


def test_instrument_is_idempotent_and_uninstrument_stops_recording(
    celery_app: Celery, exporter: BatchExporter, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    first = instrument(celery_app, exporter=exporter)
    assert instrument(celery_app, exporter=exporter) is first
    assert isinstance(first, CeleryIntegration)
    with worker(pool="solo"):
        recorded = celery_app.tasks["t.add"].delay(1, 2)
        recorded.get(timeout=10)
        assert _only(live_server, "t.add").exec_id == recorded.id
        assert uninstrument(celery_app) is True
        assert uninstrument(celery_app) is False
        celery_app.tasks["t.add"].delay(3, 4).get(timeout=10)
    exporter.flush(5)
    assert [e.exec_id for e in live_server.executions("t.add")] == [recorded.id]


def test_retry_exception_is_not_reported_as_a_failure() -> None:
    # Celery's Retry is an exception; the hooks must map it to `retrying`, never `failed`.
    assert issubclass(Retry, Exception)


def test_without_console_capture_runs_are_lean_and_report_every_outcome(
    celery_app: Celery, exporter: BatchExporter, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    integration = instrument(celery_app, exporter=exporter)
    assert integration.runs.lean
    with worker(pool="solo"):
        added = celery_app.tasks["t.add"].delay(2, 3)
        failed = celery_app.tasks["t.fail"].delay("disk full")
        flaky = celery_app.tasks["t.flaky"].delay(1)
        assert added.get(timeout=10) == 5
        with pytest.raises(ValueError, match="disk full"):
            failed.get(timeout=10)
        assert flaky.get(timeout=10) == 1
    success = _only(live_server, "t.add", added.id)
    assert success.status is ExecutionStatus.SUCCESS
    assert success.duration_ms is not None
    assert success.finished_at is not None
    assert success.finished_at >= success.started_at
    assert (success.queue, success.pid) == (celery_app.conf.task_default_queue, os.getpid())
    failure = _only(live_server, "t.fail", failed.id)
    assert failure.status is ExecutionStatus.FAILED
    assert failure.error_message == "disk full"
    assert failure.error_stack is not None
    assert "raise ValueError(message)" in failure.error_stack
    assert failure.code_snippet is not None
    assert failure.duration_ms is not None
    assert failure.finished_at is not None
    assert failure.finished_at >= failure.started_at
    attempts = sorted(live_server.wait_for_executions("t.flaky", 2), key=lambda e: e.attempt)
    assert [(e.exec_id, e.status) for e in attempts] == [
        (flaky.id, ExecutionStatus.RETRYING),
        (f"{flaky.id}:2", ExecutionStatus.SUCCESS),
    ]
    assert attempts[0].error_type == "ConnectionError"


def test_a_plain_sink_gets_finished_events(celery_app: Celery, worker: WorkerFactory) -> None:
    class Collecting:
        def __init__(self) -> None:
            self.events: list[ExecutionEvent] = []

        def record(self, event: ExecutionEvent) -> bool:
            self.events.append(event)
            return True

    sink = Collecting()
    instrument(celery_app, exporter=sink)
    with worker(pool="solo"):
        result = celery_app.tasks["t.add"].delay(1, 1)
        assert result.get(timeout=10) == 2
    [event] = [e for e in sink.events if e.exec_id == result.id]
    assert isinstance(event, ExecutionEvent)
    assert event.status is ExecutionStatus.SUCCESS
    assert event.job_id == "t.add"


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_pool_in_the_main_process_leaves_task_received_alone(
    celery_app: Celery, worker: WorkerFactory, live_server: ThreadedServer, pool: str
) -> None:
    from celery import signals

    hooks = instrument(celery_app).tasks
    receivers = [receiver for _, receiver in signals.task_received.receivers]
    assert hooks._on_received in receivers
    with worker(pool=pool):
        receivers = [receiver for _, receiver in signals.task_received.receivers]
        assert hooks._on_received not in receivers
        result = celery_app.tasks["t.add"].delay(1, 1)
        assert result.get(timeout=10) == 2
    assert _only(live_server, "t.add", result.id).status is ExecutionStatus.SUCCESS


def test_a_long_lean_task_shows_as_running_until_it_ends(
    celery_app: Celery, exporter: BatchExporter, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    assert instrument(celery_app, exporter=exporter, running_after=0.5).runs.lean
    with worker(pool="solo"):
        result = celery_app.tasks["t.sleep"].delay(1.5)
        [running] = live_server.wait_for_executions("t.sleep", 1, final=False, timeout=10)
        assert (running.exec_id, running.status) == (result.id, ExecutionStatus.RUNNING)
        assert running.queue == celery_app.conf.task_default_queue
        assert result.get(timeout=10) == 1.5
    [done] = live_server.wait_for_executions("t.sleep", 1)
    assert (done.exec_id, done.status) == (result.id, ExecutionStatus.SUCCESS)
    assert done.duration_ms is not None
    assert done.duration_ms >= 1500


def test_a_failing_job_id_callable_leaves_the_task_name(
    celery_app: Celery,
    exporter: BatchExporter,
    worker: WorkerFactory,
    live_server: ThreadedServer,
) -> None:
    asked: list[str] = []

    def broken(task: Any) -> str:
        asked.append(task.name)
        raise RuntimeError("no job id today")

    assert instrument(celery_app, exporter=exporter, job_id=broken).runs.lean
    with worker(pool="solo"):
        result = celery_app.tasks["t.add"].delay(1, 2)
        assert result.get(timeout=10) == 3
    assert _only(live_server, "t.add", result.id).status is ExecutionStatus.SUCCESS
    assert asked == ["t.add"]


def test_a_deferred_run_that_cannot_be_built_is_dropped_and_counted(
    celery_app: Celery, exporter: BatchExporter, worker: WorkerFactory, live_server: ThreadedServer
) -> None:
    celery_app.tasks["t.noop"].chronos_job_id = "j" * 300  # beyond the schema's 256
    assert instrument(celery_app, exporter=exporter).runs.lean
    with worker(pool="solo"):
        dropped = celery_app.tasks["t.noop"].delay()
        kept = celery_app.tasks["t.add"].delay(2, 2)
        dropped.get(timeout=10)
        assert kept.get(timeout=10) == 4
    assert _only(live_server, "t.add", kept.id).status is ExecutionStatus.SUCCESS
    assert exporter.flush(5)
    assert exporter.stats().dropped.get("internal_error") == 1
    assert live_server.executions("j" * 300) == []
