"""`LeanRun`: the event a lean task run turns into, built either way, is the same."""

from __future__ import annotations

import gc
import json
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from chronos_core import ExecutionEvent, ExecutionStatus, Source
from chronos_integrations.celery._runs import LeanRun, RunFactory
from tests.core.conftest import ListSink
from tests.support.otel import span_context_attached

# A plain sink (no `record_deferred`): lean runs are turned into events as they finish.
Keep = ListSink


def _factory(sink: Any = None, **options: Any) -> RunFactory:
    values: dict[str, Any] = {
        "job_id": None,
        "capture_console": False,
        "capture_args": False,
        "max_args_bytes": 1_024,
        "max_log_bytes": 10_000,
        "emit_running": False,
        "redactor": None,
        "app_version": None,
        "job_version": None,
    }
    values.update(options)
    return RunFactory(sink=lambda: sink, **values)


def _request(**fields: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "retries": 0,
        "delivery_info": {"routing_key": "celery"},
        "hostname": "celery@host",
    }
    values.update(fields)
    return SimpleNamespace(**values)


TASK = SimpleNamespace(name="t.add")


def _run(
    factory: RunFactory | None = None,
    request: SimpleNamespace | None = None,
    args: Any = None,
    task_id: str = "0b5c-task-id",
) -> LeanRun:
    return LeanRun(factory or _factory(), TASK, task_id, request or _request(), args, None)


@pytest.mark.parametrize(
    ("factory_options", "request_fields", "args"),
    [
        ({}, {}, None),
        ({}, {"delivery_info": {}, "hostname": None, "retries": 2}, None),
        ({"job_version": "2.1", "app_version": "abc123"}, {"chronos_beat_entry": "nightly"}, None),
        ({}, {"chronos_scheduled_for": "2026-01-02T03:04:05.678901+00:00"}, None),
        ({}, {"chronos_scheduled_for": "2026-01-02T03:04:05"}, None),  # naive: taken as UTC
        ({"capture_args": True}, {}, (1, "é")),
    ],
)
def test_wire_form_is_the_events(
    factory_options: dict[str, Any], request_fields: dict[str, Any], args: Any
) -> None:
    run = _run(_factory(**factory_options), _request(**request_fields), args)
    run.finish()
    wire = run.wire()
    assert wire == run.event().to_wire()
    # What the exporter sends parses back into the same event.
    assert ExecutionEvent.model_validate(json.loads(json.dumps(wire))).to_wire() == wire
    assert json.loads(run.wire_json()) == json.loads(json.dumps(wire))


class _Task:
    """A task as Celery's are: hashable (a `SimpleNamespace` is not)."""

    def __init__(self, name: str) -> None:
        self.name = name


@pytest.mark.parametrize(
    ("task_id", "task_name", "request_fields", "worker_name"),
    [
        ('quote"and\\back\nslash', "t.add", {}, None),
        ("0b5c", 'job "quoted" é', {"delivery_info": {"routing_key": "q" * 300}}, None),
        ("0b5c", "t.add", {"hostname": "h" * 300, "retries": 4}, None),
        ("0b5c", "t.add", {"delivery_info": {"queue": "other"}}, "celery@node"),
        ("ünïcode-\u2028-id", "t.add", {"delivery_info": None, "hostname": ""}, None),
    ],
)
def test_wire_json_is_the_events_json(
    task_id: str, task_name: str, request_fields: dict[str, Any], worker_name: str | None
) -> None:
    factory = _factory(job_version="2.1", app_version="abc123")
    factory.worker_name = worker_name
    task = _Task(task_name)
    runs = [LeanRun(factory, task, f"{task_id}{n}", _request(**request_fields)) for n in range(3)]
    for run in runs:
        run.finish()
        assert json.loads(run.wire_json()) == json.loads(json.dumps(run.event().to_wire()))
    # The fields every run of the task shares are made once.
    assert len(factory._wire_tails) == 1


def test_wire_json_tells_tasks_queues_and_job_ids_apart() -> None:
    factory = _factory()
    add, mul = _Task("t.add"), _Task("t.mul")
    runs = [
        LeanRun(factory, add, "1", _request()),
        LeanRun(factory, mul, "2", _request()),
        LeanRun(factory, add, "3", _request(delivery_info={"routing_key": "other"})),
        LeanRun(factory, add, "4", _request(chronos_job_id="from-beat")),
        LeanRun(factory, add, "5", _request(hostname="celery@other")),
        LeanRun(factory, add, "6", _request()),
    ]
    seen = []
    for run in runs:
        run.finish()
        wire = json.loads(run.wire_json())
        assert wire == json.loads(json.dumps(run.event().to_wire()))
        seen.append((wire["jobId"], wire["queue"], wire["worker"]))
    assert seen == [
        ("t.add", "celery", "celery@host"),
        ("t.mul", "celery", "celery@host"),
        ("t.add", "other", "celery@host"),
        ("from-beat", "celery", "celery@host"),
        ("t.add", "celery", "celery@other"),
        ("t.add", "celery", "celery@host"),
    ]
    assert len(factory._wire_tails) == 5


def test_wire_json_of_a_run_with_fields_of_its_own_is_its_wire_form() -> None:
    run = _run(request=_request(chronos_beat_entry="nightly", chronos_job_id="reports"))
    run.trace_id = "ab" * 16
    run.finish()
    assert json.loads(run.wire_json()) == run.wire()
    assert json.loads(run.wire_json())["traceId"] == "ab" * 16


def test_what_the_event_holds_is_read_from_the_request_and_the_task() -> None:
    request = _request(
        retries=2,
        chronos_beat_entry="nightly",
        chronos_job_id="from-beat",
        chronos_scheduled_for="2026-01-02T03:04:05",
    )
    factory = _factory(job_version="2.1")
    factory.worker_name = "celery@node"
    event = _run(factory, request).event()
    assert (event.exec_id, event.attempt, event.job_id) == ("0b5c-task-id:3", 3, "from-beat")
    assert (event.queue, event.worker, event.job_version) == ("celery", "celery@node", "2.1")
    assert event.metadata == {"beatEntry": "nightly"}
    assert event.scheduled_for is not None
    assert event.scheduled_for.isoformat() == "2026-01-02T03:04:05+00:00"
    assert event.source is Source.CELERY


def test_task_arguments_are_read_as_the_run_starts() -> None:
    args = [1, 2]
    run = _run(_factory(capture_args=True), args=args)
    args.append(3)  # the task changes its arguments while it runs
    assert run.event().metadata == {"args": "[1, 2]"}


def test_a_job_id_callable_is_asked_as_the_run_starts() -> None:
    asked: list[object] = []

    def choose(task: object) -> str:
        asked.append(task)
        return "chosen"

    run = _run(_factory(job_id=choose))
    assert asked == [TASK]
    assert run.wire()["jobId"] == "chosen"
    assert asked == [TASK]


def test_a_finished_run_is_not_finished_again() -> None:
    sink = Keep()
    run = _run(_factory(sink))
    assert not run.finished
    run.finish()
    run.finish()
    assert run.finished
    assert [e.exec_id for e in sink.events] == ["0b5c-task-id"]
    assert sink.events[0].finished_at is not None
    assert sink.events[0].finished_at >= sink.events[0].started_at


def test_a_failure_is_a_full_event_at_once() -> None:
    sink = Keep()
    run = _run(_factory(sink))
    try:
        raise ValueError("disk full")
    except ValueError as error:
        run.finish(ExecutionStatus.FAILED, error=error)
    [event] = sink.events
    assert (event.status, event.error_message, event.job_id) == (
        ExecutionStatus.FAILED,
        "disk full",
        "t.add",
    )
    assert event.error_stack is not None


def test_ids_beyond_the_schema_are_refused_when_the_event_is_built() -> None:
    run = _run(task_id="x" * 257)
    run.finish()
    with pytest.raises(ValueError, match="exec_id"):
        run.wire()
    with pytest.raises(ValueError, match="exec_id"):
        run.event()
    long_job = LeanRun(_factory(), SimpleNamespace(name="j" * 300), "id", _request())
    with pytest.raises(ValueError, match="job_id"):
        long_job.wire()
    with pytest.raises(ValueError, match="exec_id"):
        run.wire_json()
    long_job.finish()
    with pytest.raises(ValueError, match="job_id"):
        long_job.wire_json()
    # A plain sink: the run is dropped and logged, nothing raises into the task.
    sink = Keep()
    LeanRun(_factory(sink), TASK, "x" * 257, _request()).finish()
    assert sink.events == []


class _Request:
    """A request that can be weakly referenced, holding a large argument."""

    def __init__(self, **fields: Any) -> None:
        self.retries = 0
        self.delivery_info = {"routing_key": "celery"}
        self.hostname = "celery@host"
        self.args = ["x" * 1_000_000]
        self.__dict__.update(fields)


def test_a_run_waiting_to_be_sent_does_not_keep_the_request_alive() -> None:
    request = _Request(chronos_beat_entry="nightly", chronos_job_id="reports.nightly")
    ref = weakref.ref(request)
    run = _run(request=request)  # type: ignore[arg-type]
    run.finish()
    del request
    gc.collect()
    assert ref() is None, "the request (and the task's arguments) outlived the run's start"
    wire = run.wire()
    assert wire["jobId"] == "reports.nightly"
    assert wire["metadata"] == {"beatEntry": "nightly"}
    assert (wire["queue"], wire["worker"]) == ("celery", "celery@host")


def test_a_lean_run_carries_every_header_the_integration_stamps() -> None:
    from chronos_integrations.celery import _runs

    headers = {_runs.HEADER_BEAT_ENTRY, _runs.HEADER_JOB_ID, _runs.HEADER_SCHEDULED_FOR}
    assert headers <= set(_runs.LeanRun.__slots__)


@pytest.mark.parametrize(
    ("wall_ns", "duration_ns"),
    [
        (1_767_225_600_000_000_000, 0),
        (1_767_225_600_123_456_789, 1),
        (1_767_225_600_123_456_789, 499),
        (1_767_225_600_123_456_789, 500),
        (1_767_225_600_999_999_999, 1_000),  # ends in the next second
        (1_767_225_600_999_000_000, 999_999),
        (1_767_225_600_500_000_000, 123_456_789),
        (1_767_225_659_999_999_000, 60_000_000_000),  # a minute, across minutes
        (1_767_225_600_000_001_000, 86_400_000_000_000 * 12),  # 12 days: repr's own text
    ],
)
def test_wire_json_writes_times_and_duration_as_the_event_does(
    wall_ns: int, duration_ns: int
) -> None:
    from chronos_core._events import duration_ms, wire_timestamp

    run = _run()
    run.finish()
    run._wall_ns = wall_ns
    run._duration_ns = duration_ns
    text = run.wire_json().decode()
    wire = json.loads(text)
    assert wire == json.loads(json.dumps(run.event().to_wire()))
    # Byte for byte what `duration_ms` and `wire_timestamp` write.
    started = wall_ns // 1_000
    assert f'"durationMs":{duration_ms(duration_ns)!r},' in text
    assert f'"startedAt":"{wire_timestamp(started)}",' in text
    assert f'"finishedAt":"{wire_timestamp(started + duration_ns // 1_000)}",' in text


def test_wire_json_reads_a_celery_request_as_getattr_would() -> None:
    from celery.app.task import Context

    fields = {
        "retries": 1,
        "delivery_info": {"routing_key": "q1"},
        "hostname": "celery@a",
        "chronos_job_id": "beat-job",
    }
    context_run = _run(request=Context(fields))  # type: ignore[arg-type]
    plain_run = _run(request=_request(**fields))
    bare_run = _run(request=Context())  # type: ignore[arg-type]
    for run in (context_run, plain_run, bare_run):
        run.finish()
        run._wall_ns, run._duration_ns = 1_767_225_600_000_000_000, 1_000_000
    assert context_run.wire() == plain_run.wire()
    assert (context_run.attempt, context_run.job_id, context_run.queue) == (2, "beat-job", "q1")
    assert (bare_run.attempt, bare_run.job_id, bare_run.queue, bare_run.worker) == (
        1,
        "t.add",
        None,
        None,
    )


def test_a_lean_run_carries_the_trace_id_of_the_span_it_starts_in() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from chronos_core import _tracing

    tracer = TracerProvider().get_tracer("tests")
    assert _run().trace_id is None  # finds OpenTelemetry's context variable
    assert _tracing.otel_context is not None
    with tracer.start_as_current_span("task") as span:
        traced = _run()
    assert traced.trace_id == format(span.get_span_context().trace_id, "032x")
    assert _run().trace_id is None
    # A span context attached by hand (no tracer) is found too.
    with span_context_attached() as trace_id:
        assert _run().trace_id == trace_id
    assert _run().trace_id is None


def test_runs_after_the_worker_is_named_carry_its_name() -> None:
    # The JSON a task's runs share is kept per task; runs made before the worker's name was
    # known (the request's host name stands in) must not lend it to the runs after.
    factory = _factory()
    task = type("Task", (), {"name": "t.add"})()  # hashable, as Celery's tasks are: kept

    def run() -> LeanRun:
        made = LeanRun(factory, task, "0b5c-task-id", _request(hostname="celery@host"), None, None)
        made.finish()
        return made

    before = run()
    assert json.loads(before.wire_json())["worker"] == "celery@host"
    assert factory._wire_tails, "the shared JSON is kept"
    factory.worker_name = "celery@node"
    after = run()
    assert json.loads(after.wire_json())["worker"] == "celery@node"
    assert json.loads(after.wire_json()) == after.wire()
