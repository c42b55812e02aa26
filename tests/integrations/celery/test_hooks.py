"""The task hooks and the running reporter, driven directly: attempts in flight, long runs."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from celery import states

from chronos_core import ExecutionStatus
from chronos_integrations.celery._running import RunningReporter
from chronos_integrations.celery._runs import LeanRun, RunFactory
from chronos_integrations.celery._signals import FINISHED_MEMORY, TaskHooks
from tests.core.conftest import ListSink

# A plain sink (no `record_deferred`): lean runs are turned into events as they finish.
Keep = ListSink


def _hooks(sink: Keep, running: RunningReporter | None = None) -> tuple[TaskHooks, Any]:
    app = object()
    factory = RunFactory(
        sink=lambda: sink,
        job_id=None,
        capture_console=False,
        capture_args=False,
        max_args_bytes=1_024,
        max_log_bytes=10_000,
        emit_running=False,
        redactor=None,
        app_version=None,
        job_version=None,
    )
    task = SimpleNamespace(app=app, name="t.add", request=None)
    return TaskHooks(app, factory, running), task


def _request(retries: int = 0) -> SimpleNamespace:
    return SimpleNamespace(retries=retries, delivery_info={}, hostname="celery@host")


@pytest.mark.parametrize("first_to_end", [1, 2])
def test_two_attempts_of_one_task_id_in_flight_are_told_apart(first_to_end: int) -> None:
    sink = Keep()
    hooks, task = _hooks(sink)
    requests = {1: _request(0), 2: _request(1)}
    for attempt in (1, 2):
        task.request = requests[attempt]
        hooks._on_prerun(task_id="tid", task=task)
    assert hooks.in_flight == 2
    # Each attempt ends on the thread that runs it, where `task.request` is its own.
    for attempt in (first_to_end, 3 - first_to_end):
        task.request = requests[attempt]
        hooks._on_postrun(task_id="tid", task=task, state=states.SUCCESS)
    assert hooks.in_flight == 0
    assert [(e.exec_id, e.attempt) for e in sink.events] == [
        ("tid" if first_to_end == 1 else "tid:2", first_to_end),
        ("tid:2" if first_to_end == 1 else "tid", 3 - first_to_end),
    ]
    # A second signal about a finished run is not a second event.
    hooks._on_failure(sender=task, task_id="tid", exception=ValueError("late"))
    assert len(sink.events) == 2


def test_a_redelivered_attempt_replaces_the_one_in_flight() -> None:
    sink = Keep()
    hooks, task = _hooks(sink)
    task.request = _request(0)
    hooks._on_prerun(task_id="tid", task=task)
    hooks._on_prerun(task_id="tid", task=task)
    assert hooks.in_flight == 1
    hooks._on_postrun(task_id="tid", task=task, state=states.SUCCESS)
    assert [e.exec_id for e in sink.events] == ["tid"]


def test_a_retry_ends_the_attempt_it_names() -> None:
    sink = Keep()
    hooks, task = _hooks(sink)
    first, second = _request(0), _request(1)
    for request in (first, second):
        task.request = request
        hooks._on_prerun(task_id="tid", task=task)
    first.id = "tid"
    hooks._on_retry(sender=task, request=first, reason=ConnectionError("down"))
    assert [(e.exec_id, e.status) for e in sink.events] == [("tid", ExecutionStatus.RETRYING)]
    hooks._on_postrun(task_id="tid", task=task, state=states.SUCCESS)
    assert [(e.exec_id, e.status) for e in sink.events][1:] == [("tid:2", ExecutionStatus.SUCCESS)]
    assert hooks.in_flight == 0


def test_finished_runs_are_forgotten_in_bulk_beyond_the_memory() -> None:
    hooks, _ = _hooks(Keep())
    for index in range(2 * FINISHED_MEMORY + 1):
        hooks._remember((f"id-{index}", 1))
    assert len(hooks._finished) == FINISHED_MEMORY + 1
    assert ("id-0", 1) not in hooks._finished
    assert (f"id-{2 * FINISHED_MEMORY}", 1) in hooks._finished


def test_the_running_reporter_reports_a_long_run_once() -> None:
    sink = Keep()
    reporter = RunningReporter(lambda: sink, 0.1)
    hooks, task = _hooks(sink, reporter)
    task.request = _request(0)
    hooks._on_prerun(task_id="long", task=task)
    hooks._on_prerun(task_id="short", task=task)
    hooks._on_postrun(task_id="short", task=task, state=states.SUCCESS)
    try:
        deadline = time.monotonic() + 5
        while not any(e.status is ExecutionStatus.RUNNING for e in sink.events):
            assert time.monotonic() < deadline, "no running event"
            time.sleep(0.02)
        time.sleep(0.3)  # a few more scans: reported once only
        running = [e for e in sink.events if e.status is ExecutionStatus.RUNNING]
        assert [(e.exec_id, e.job_id) for e in running] == [("long", "t.add")]
        assert running[0].finished_at is None
        hooks._on_postrun(task_id="long", task=task, state=states.SUCCESS)
        time.sleep(0.15)
        assert reporter._reported == {}
    finally:
        reporter.stop()
    assert [(e.exec_id, e.status) for e in sink.events] == [
        ("short", ExecutionStatus.SUCCESS),
        ("long", ExecutionStatus.RUNNING),
        ("long", ExecutionStatus.SUCCESS),
    ]


def test_the_running_reporter_leaves_recent_and_finished_runs_alone() -> None:
    sink = Keep()
    hooks, task = _hooks(sink)
    task.request = _request(0)
    reporter = RunningReporter(lambda: sink, 60)
    hooks._on_prerun(task_id="recent", task=task)
    reporter._runs = hooks.runs_in_flight
    reporter._report_due()
    assert sink.events == []
    [run] = hooks.runs_in_flight()
    assert isinstance(run, LeanRun)
    run.finish()
    reporter.delay = 0
    reporter._report_due()
    assert [e.status for e in sink.events] == [ExecutionStatus.SUCCESS]


def test_prerun_reads_the_request_a_celery_task_runs_under() -> None:
    from celery import Celery
    from celery.app.task import Context

    app = Celery("hooks-test", set_as_current=False)

    @app.task(shared=False, name="t.add")
    def add() -> None:
        pass

    task = app.tasks["t.add"]
    sink = Keep()
    hooks, _ = _hooks(sink)
    hooks.app = app
    task.request_stack.push(Context({"id": "tid", "retries": 2, "hostname": "celery@a"}))
    try:
        assert task.request.retries == 2
        hooks._on_prerun(task_id="tid", task=task)
        hooks._on_postrun(task_id="tid", task=task, state=states.SUCCESS)
    finally:
        task.request_stack.pop()
    # With nothing on the stack, the task's default request (`task.request`) is read.
    hooks._on_prerun(task_id="none", task=task)
    hooks._on_postrun(task_id="none", task=task, state=states.SUCCESS)
    assert [(e.exec_id, e.attempt, e.worker) for e in sink.events] == [
        ("tid:3", 3, "celery@a"),
        ("none", 1, None),
    ]
