from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chronos_core import _console
from chronos_core._capture import RunCapture, capture
from chronos_core._models import (
    MAX_LABELS,
    ExecutionEvent,
    ExecutionStatus,
    Source,
)
from chronos_core._redact import Redactor
from tests.core.conftest import BrokenSink, ListSink

EXEC_ID = re.compile(r"^job-1:\d{13}-[0-9a-f]{8}$")


def _round_trips(event: ExecutionEvent) -> None:
    """What the server parses from the wire is what was sent (timestamps are in ms there)."""
    wire = event.to_wire()
    assert ExecutionEvent.model_validate(wire).to_wire() == wire


def test_successful_run(sink: ListSink) -> None:
    before = datetime.now(UTC)
    with capture("job-1", sink=sink, app_version="2.0.1", labels=["nightly"]) as run:
        pass

    event = sink.only
    assert event.status is ExecutionStatus.SUCCESS
    assert event.exec_id == run.exec_id
    assert EXEC_ID.match(event.exec_id)
    assert event.job_id == "job-1"
    assert before <= event.started_at <= datetime.now(UTC)
    assert event.finished_at is not None
    assert event.finished_at >= event.started_at
    assert event.duration_ms is not None
    assert 0 <= event.duration_ms < 1_000
    assert event.error_type is event.error_message is event.error_stack is None
    assert event.app_version == "2.0.1"
    assert event.labels == ["nightly"]
    assert event.attempt == 1
    assert event.source is Source.RUNNER
    assert event.host
    assert event.pid
    _round_trips(event)


class QuotaExceeded(Exception):
    pass


def test_failed_run_reports_the_error_and_lets_it_propagate(sink: ListSink) -> None:
    error = QuotaExceeded("quota of 10 exceeded")
    with pytest.raises(QuotaExceeded) as raised, capture("job-1", sink=sink):
        raise error  # the failing line

    assert raised.value is error
    event = sink.only
    assert event.status is ExecutionStatus.FAILED
    assert event.error_type == f"{__name__}.QuotaExceeded"
    assert event.error_message == "quota of 10 exceeded"
    assert event.error_stack is not None
    assert event.error_stack.startswith("Traceback (most recent call last):")
    assert event.error_stack.endswith("QuotaExceeded: quota of 10 exceeded\n")
    assert event.code_language == "python"
    assert event.code_snippet is not None
    assert "\n> " in event.code_snippet
    assert "raise error  # the failing line" in event.code_snippet
    _round_trips(event)


def test_builtin_errors_are_named_without_a_module(sink: ListSink) -> None:
    with pytest.raises(KeyError), capture("job-1", sink=sink):
        {}["missing"]
    assert sink.only.error_type == "KeyError"


def test_keyboard_interrupt_is_cancelled(sink: ListSink) -> None:
    with pytest.raises(KeyboardInterrupt), capture("job-1", sink=sink):
        raise KeyboardInterrupt
    assert sink.only.status is ExecutionStatus.CANCELLED


async def test_cancelled_task_is_cancelled(sink: ListSink) -> None:
    started = asyncio.Event()

    async def job() -> None:
        async with capture("job-1", sink=sink):
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(job())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.only.status is ExecutionStatus.CANCELLED
    assert sink.only.error_type == "asyncio.exceptions.CancelledError"


def test_timeout_error_from_the_job_is_a_failure(sink: ListSink) -> None:
    with pytest.raises(TimeoutError), capture("job-1", sink=sink):
        raise TimeoutError("upstream took too long")
    assert sink.only.status is ExecutionStatus.FAILED


def test_integration_can_report_a_timeout(sink: ListSink) -> None:
    run = RunCapture("job-1", sink=sink).start()
    event = run.finish(ExecutionStatus.TIMEOUT, error=TimeoutError("hard time limit"))

    assert event is sink.only
    assert event.status is ExecutionStatus.TIMEOUT
    assert event.status.is_failure
    assert event.error_message == "hard time limit"


def test_sys_exit_reports_its_code(sink: ListSink) -> None:
    with pytest.raises(SystemExit), capture("job-1", sink=sink):
        sys.exit(3)
    with pytest.raises(SystemExit), capture("job-1", sink=sink):
        sys.exit(0)
    failed, succeeded = sink.events
    assert (failed.status, failed.exit_code) == (ExecutionStatus.FAILED, 3)
    assert (succeeded.status, succeeded.exit_code) == (ExecutionStatus.SUCCESS, 0)


def test_emit_running_reports_twice_under_one_exec_id(sink: ListSink) -> None:
    with capture("job-1", sink=sink, emit_running=True):
        assert [e.status for e in sink.events] == [ExecutionStatus.RUNNING]

    running, final = sink.events
    assert running.exec_id == final.exec_id
    assert running.finished_at is None
    assert running.duration_ms is None
    assert final.status is ExecutionStatus.SUCCESS
    assert running.started_at == final.started_at
    _round_trips(running)


def test_finish_is_idempotent(sink: ListSink) -> None:
    run = RunCapture("job-1", sink=sink).start()
    assert run.finish() is not None
    assert run.finish(ExecutionStatus.FAILED) is None
    assert run.finished
    assert [e.status for e in sink.events] == [ExecutionStatus.SUCCESS]


def test_finish_without_start_still_reports(sink: ListSink) -> None:
    event = RunCapture("job-1", sink=sink).finish(ExecutionStatus.SKIPPED)
    assert event is not None
    assert event.status is ExecutionStatus.SKIPPED
    assert event.duration_ms == 0


def test_a_broken_sink_changes_nothing_for_the_job() -> None:
    sink = BrokenSink()

    with capture("job-1", sink=sink, emit_running=True):
        result = 6 * 7
    assert result == 42

    error = ValueError("the job's own error")
    with pytest.raises(ValueError, match="own error") as raised, capture("job-1", sink=sink):
        raise error
    assert raised.value is error
    assert sink.calls == 3


def test_a_broken_redactor_withholds_text_instead_of_raising(sink: ListSink) -> None:
    class BrokenRedactor(Redactor):
        def redact(self, text: str) -> str:
            raise RuntimeError("bad pattern")

    with (
        pytest.raises(ValueError, match="hunter2"),
        capture("job-1", sink=sink, redactor=BrokenRedactor()),
    ):
        raise ValueError("password=hunter2")
    assert sink.only.error_message == "[withheld: redaction failed]"


def test_nothing_is_recorded_without_a_sink() -> None:
    run = RunCapture("job-1").start()
    event = run.finish()
    assert event is not None
    assert event.status is ExecutionStatus.SUCCESS


def test_secrets_are_redacted_from_error_and_output(console: Any, sink: ListSink) -> None:
    def job() -> None:
        print("connecting to postgres://app:s3cret@db/app")
        raise ConnectionError("login failed for password=hunter2")

    with pytest.raises(ConnectionError), capture("job-1", sink=sink, capture_console=True):
        job()

    event = sink.only
    text = f"{event.stdout} {event.error_message} {event.error_stack}"
    assert "s3cret" not in text
    assert "hunter2" not in text
    assert event.stdout == "connecting to postgres://app:[REDACTED]@db/app\n"
    assert event.error_message == "login failed for password=[REDACTED]"


def test_large_fields_are_truncated_to_max_log_bytes(sink: ListSink) -> None:
    run = RunCapture("job-1", sink=sink, max_log_bytes=1_000).start()
    event = run.finish(stdout="BEGIN\n" + "é" * 100_000 + "\nEND", stderr="")

    assert event is not None
    assert event.stdout is not None
    assert len(event.stdout.encode()) <= 1_000
    assert event.stdout.startswith("BEGIN\n")
    assert event.stdout.endswith("\nEND")
    assert event.stderr is None
    _round_trips(event)


def test_explicit_error_message_without_an_exception(sink: ListSink) -> None:
    run = RunCapture("job-1", sink=sink, source=Source.EXEC).start()
    event = run.finish(ExecutionStatus.FAILED, exit_code=2, error_message="exited with code 2")
    assert event is not None
    assert (event.exit_code, event.error_message) == (2, "exited with code 2")
    assert event.error_type is None


def test_console_output_of_concurrent_runs_in_threads_stays_apart(
    console: pytest.CaptureFixture[str], sink: ListSink
) -> None:
    barrier = threading.Barrier(3)

    def job(name: str) -> None:
        with capture(name, sink=sink, capture_console=True):
            barrier.wait()
            for i in range(100):
                print(f"{name}:{i}")
            print(f"{name} warning", file=sys.stderr)

    threads = [threading.Thread(target=job, args=(f"job-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    by_job = {event.job_id: event for event in sink.events}
    assert sorted(by_job) == ["job-0", "job-1", "job-2"]
    for name, event in by_job.items():
        assert event.stdout == "".join(f"{name}:{i}\n" for i in range(100))
        assert event.stderr == f"{name} warning\n"
    out, err = console.readouterr()
    assert all(f"job-{n}:99\n" in out for n in range(3))
    assert all(f"job-{n} warning\n" in err for n in range(3))


async def test_console_output_of_concurrent_runs_in_tasks_stays_apart(
    console: pytest.CaptureFixture[str], sink: ListSink
) -> None:
    async def job(name: str) -> None:
        async with capture(name, sink=sink, capture_console=True):
            for i in range(20):
                print(f"{name}:{i}")
                await asyncio.sleep(0)

    await asyncio.gather(job("alpha"), job("beta"))

    by_job = {event.job_id: event for event in sink.events}
    assert by_job["alpha"].stdout == "".join(f"alpha:{i}\n" for i in range(20))
    assert by_job["beta"].stdout == "".join(f"beta:{i}\n" for i in range(20))
    assert console.readouterr().out.startswith("alpha:0\nbeta:0\nalpha:1\n")


def test_sdk_warnings_do_not_land_in_the_run_output(
    console: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    run = RunCapture("job-1", sink=BrokenSink(), capture_console=True).start()
    print("job output")
    event = run.finish()

    assert event is not None
    assert event.stdout == "job output\n"
    assert "the sink failed to record" in caplog.text


def test_labels_and_metadata_are_kept_within_the_schema(sink: ListSink) -> None:
    run = RunCapture(
        "job-1",
        sink=sink,
        labels=[f"label-{i}" for i in range(100)] + ["x" * 1_000],
        metadata={"rows": 5, "when": datetime(2025, 1, 1, tzinfo=UTC), "obj": object()},
    )
    with run:
        run.metadata["extra"] = "added during the run"

    event = sink.only
    assert len(event.labels) == MAX_LABELS
    assert event.metadata["rows"] == 5
    assert event.metadata["when"] == "2025-01-01 00:00:00+00:00"
    assert event.metadata["extra"] == "added during the run"
    assert event.metadata["obj"].startswith("<object object")
    _round_trips(event)


def test_oversized_metadata_is_dropped_not_sent(sink: ListSink) -> None:
    with capture("job-1", sink=sink, metadata={"blob": "x" * 20_000}):
        pass
    assert "blob" not in sink.only.metadata
    _round_trips(sink.only)


def test_every_optional_field_round_trips(sink: ListSink) -> None:
    scheduled = datetime(2025, 9, 1, 12, 0)  # naive: taken as UTC
    run = RunCapture(
        "job-1",
        sink=sink,
        source=Source.CELERY,
        exec_id="celery-task-uuid",
        attempt=3,
        job_version="1.4.0",
        app_version="2.0.1",
        queue="default",
        worker="celery@host",
        trigger_id="trigger-9",
        scheduled_for=scheduled,
        capture_console=False,
    )
    with pytest.raises(RuntimeError), run:
        raise RuntimeError("boom")

    event = sink.only
    assert event.exec_id == "celery-task-uuid"
    assert event.attempt == 3
    assert event.scheduled_for == scheduled.replace(tzinfo=UTC)
    assert (event.queue, event.worker, event.trigger_id) == ("default", "celery@host", "trigger-9")
    wire = event.to_wire()
    assert wire["source"] == "celery"
    assert wire["jobVersion"] == "1.4.0"
    _round_trips(event)


def test_default_exec_ids_are_unique() -> None:
    ids = {RunCapture("job-1").exec_id for _ in range(2_000)}
    assert len(ids) == 2_000


def test_long_job_ids_still_give_a_valid_exec_id(sink: ListSink) -> None:
    with capture("j" * 256, sink=sink):
        pass
    assert len(sink.only.exec_id) <= 256
    _round_trips(sink.only)


@pytest.mark.parametrize(
    "kwargs",
    [{"job_id": ""}, {"job_id": "x" * 257}, {"attempt": 0}, {"max_log_bytes": -1}],
)
def test_bad_arguments_are_rejected_at_construction(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"job_id": "job-1", **kwargs}
    with pytest.raises(ValueError, match=r"must be|counts from"):
        RunCapture(**arguments)


def test_a_prepared_run_installs_capture_before_it_starts(console: Any, sink: ListSink) -> None:
    run = RunCapture("job-1", sink=sink, capture_console=True).prepare()
    assert _console.is_installed()
    print("before the start: not the run's")
    run.start()
    print("during the run")
    run.finish()
    assert sink.only.stdout == "during the run\n"


def test_concluded_fields_make_the_event_finish_would(sink: ListSink) -> None:
    before_start = RunCapture("job-1", sink=sink, exec_id="job-1:1", labels=["a"])
    run = RunCapture("job-1", sink=sink, exec_id="job-1:1", labels=["a"]).start()
    try:
        raise ValueError("bad row")
    except ValueError as error:
        fields = run.conclude(error=error)
    assert fields is not None
    assert sink.events == [], "conclude() hands nothing to the sink"
    assert run.conclude() is None
    assert run.finish() is None, "a concluded run is finished"
    event = before_start.event_from(fields)
    assert event == run.event_from(fields)
    assert event.status is ExecutionStatus.FAILED
    assert event.error_type == "ValueError"
    assert event.started_at == run.started_at


def test_a_prepared_run_reads_its_trace_from_the_context_it_was_prepared_in(
    sink: ListSink,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("worker") as span:
        expected = format(span.get_span_context().trace_id, "032x")
        before_start = RunCapture("job-1", exec_id="job-1:1").prepare()
        run = RunCapture("job-1", sink=sink, exec_id="job-1:1").prepare().start()
        fields = run.conclude()
    assert fields is not None
    assert "trace_id" not in fields, "unchanged context: the trace is read when the event is made"
    # Made outside the span, as a forking worker's parent does: the kept context decides.
    assert before_start.event_from(fields).trace_id == expected
    assert run.event_from(fields).trace_id == expected


def test_a_span_begun_after_prepare_is_the_runs_trace(sink: ListSink) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("tests")
    run = RunCapture("job-1", sink=sink).prepare()
    with tracer.start_as_current_span("job") as span:
        run.start()
        run.finish()
    assert sink.only.trace_id == format(span.get_span_context().trace_id, "032x")


def test_a_prepared_run_outside_any_span_has_no_trace(sink: ListSink) -> None:
    run = RunCapture("job-1", sink=sink).prepare().start()
    run.finish()
    assert sink.only.trace_id is None


def test_a_run_started_from_clocks_read_earlier_keeps_them() -> None:
    wall, perf = time.time_ns(), time.perf_counter_ns()
    console = _console.ConsoleCapture(1_000)
    console.begin()
    print("while the job ran")
    run = RunCapture("job-1").start_from(wall, perf, console=console)
    fields = run.conclude(ended_ns=perf + 1_500_000)
    assert fields is not None
    assert fields["started_at"] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=wall // 1_000
    )
    assert fields["duration_ms"] == 1.5
    assert fields["stdout"] == "while the job ran\n"
    print("after the run")  # the run ended the capture it adopted
    assert console.stdout.text() == "while the job ran\n"


def test_a_paused_console_capture_passes_writes_through_without_keeping_them() -> None:
    console = _console.ConsoleCapture(1_000)
    console.paused = True
    console.begin()
    try:
        print("not kept")
        console.paused = False
        print("kept")
        console.paused = True
        print("not kept either")
    finally:
        console.end()
    assert console.stdout.text() == "kept\n"
