"""The pipe from a work horse to its parent: a run's outcome crosses it unchanged."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from chronos_core import ExecutionEvent, ExecutionStatus, RunCapture, Source
from chronos_integrations.rq._channel import HorseChannel, HorseReport, from_wire, to_wire


class _Keep:
    def __init__(self) -> None:
        self.events: list[ExecutionEvent] = []

    def record(self, event: ExecutionEvent) -> bool:
        self.events.append(event)
        return True


def _failed_run() -> tuple[RunCapture, dict[str, object], ExecutionEvent]:
    """A copy of a run made before it started, its final fields, and its own event."""
    options: dict[str, object] = {
        "source": Source.RQ,
        "exec_id": "rq:1:2",
        "labels": ["a"],
        "metadata": {"rqJobId": "1"},
        "queue": "default",
        "scheduled_for": datetime(2025, 9, 1, tzinfo=UTC),
    }
    prepared = RunCapture("jobs.report", **options)  # type: ignore[arg-type]
    run = RunCapture("jobs.report", **options).start()  # type: ignore[arg-type]
    try:
        raise ValueError("boom")
    except ValueError as error:
        fields = run.conclude(error=error, stdout="out")
    assert fields is not None
    assert run.conclude() is None, "a run concludes once"
    return prepared, fields, run.event_from(fields)


def test_a_report_crosses_the_pipe_and_makes_the_same_event() -> None:
    prepared, fields, finished = _failed_run()
    assert finished.status is ExecutionStatus.FAILED
    assert finished.error_stack
    assert finished.code_snippet
    channel = HorseChannel()
    assert channel.send([to_wire(dict(fields))]) == []
    channel.close_writer()
    payload = channel.receive_bytes()
    event = HorseReport(prepared, payload).event()
    assert event.status is ExecutionStatus.FAILED
    assert event.pid == os.getpid()
    assert event.error_stack == finished.error_stack
    assert event.stdout == "out"
    # Made by the parent's copy of the run from the horse's fields: the very event the
    # horse would have made.
    assert event == finished
    assert event.model_fields_set == finished.model_fields_set
    assert event.to_wire() == finished.to_wire()


def test_a_truncated_frame_is_dropped_and_the_rest_kept() -> None:
    _, fields, _ = _failed_run()
    wire = to_wire(dict(fields))
    channel = HorseChannel()
    assert channel.send([wire]) == []
    os.write(channel._writer, b"\x00\x00\x10\x00partial")
    channel.close_writer()
    assert channel.receive() == [wire]


def test_an_empty_report_is_an_error_for_the_exporter_to_count() -> None:
    prepared, _, _ = _failed_run()
    with pytest.raises(ValueError, match="empty or malformed"):
        HorseReport(prepared, b"").event()


def test_a_report_at_every_limit_fits_the_pipe_opened_for_it() -> None:
    from chronos_integrations.rq._channel import _frame, report_size

    limit = 10_000
    run = RunCapture("jobs.report", max_log_bytes=limit).start()
    try:
        raise ValueError("é" * 20_000)
    except ValueError as error:
        fields = run.conclude(error=error, stdout="ü" * 30_000, stderr="€" * 30_000)
    assert fields is not None
    fields = to_wire(fields)
    assert len(_frame(fields)) <= report_size(limit)
    channel = HorseChannel(report_size(limit))
    assert channel.capacity >= report_size(limit), "the default limit needs no larger pipe"
    assert channel.send_one(fields)
    channel.close_writer()
    assert channel.receive() == [fields]


def test_a_larger_limit_grows_the_pipe() -> None:
    from chronos_integrations.rq._channel import report_size

    channel = HorseChannel(report_size(200_000))
    assert channel.capacity >= report_size(200_000)
    channel.close()


def test_plain_fields_turn_back_into_the_same_values() -> None:
    _, fields, _ = _failed_run()
    wire = to_wire(dict(fields))
    assert type(wire["status"]) is str
    assert isinstance(wire["started_at"], float)
    back = from_wire(dict(wire))
    assert back == fields
    assert back["started_at"].microsecond == fields["started_at"].microsecond
