"""The pipe from a work horse to its parent: a run's outcome crosses it unchanged."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest

from chronos_core import ExecutionEvent, ExecutionStatus, RunCapture, Source
from chronos_integrations.rq._channel import (
    HorseChannel,
    HorsePlan,
    decode_frames,
    encode_frame,
    to_wire,
)
from chronos_integrations.rq._report import HorseReport, from_wire


def _plan(channel: HorseChannel | None = None) -> HorsePlan:
    return HorsePlan(
        channel or HorseChannel(),
        job_id="jobs.report",
        exec_id="rq:1:2",
        attempt=1,
        rq_job_id="1",
        queue="default",
        worker="w1",
        labels=("a",),
        max_log_bytes=10_000,
        app_version="1.2.3",
        console=None,
    )


def _failed_run() -> tuple[HorsePlan, dict[str, object], ExecutionEvent]:
    """A plan of a run, the final fields of that run, and the run's own event."""
    plan = _plan()
    run = plan.run().start()
    try:
        raise ValueError("boom")
    except ValueError as error:
        fields = run.conclude(error=error, stdout="out")
    assert fields is not None
    assert run.conclude() is None, "a run concludes once"
    return plan, fields, run.event_from(fields)


def test_a_report_crosses_the_pipe_and_makes_the_same_event() -> None:
    plan, fields, finished = _failed_run()
    assert finished.status is ExecutionStatus.FAILED
    assert finished.error_stack
    assert finished.code_snippet
    channel = HorseChannel()
    assert channel.send_frame(encode_frame(to_wire(dict(fields))))
    channel.close_writer()
    payload = channel.drain()
    event = HorseReport(plan, payload).event()
    assert event.status is ExecutionStatus.FAILED
    assert event.pid == os.getpid()
    assert event.error_stack == finished.error_stack
    assert event.stdout == "out"
    assert event.source is Source.RQ
    assert (event.queue, event.worker, event.labels) == ("default", "w1", ["a"])
    assert event.metadata == {"rqJobId": "1"}
    # Made by the parent from its plan and the horse's fields: the very event the horse
    # would have made.
    assert event == finished
    assert event.model_fields_set == finished.model_fields_set
    assert event.to_wire() == finished.to_wire()


def test_a_plain_success_crosses_as_a_tuple_of_numbers() -> None:
    channel = HorseChannel()
    plan = _plan(channel)
    wall = 1_764_000_000_123_456_789  # ns
    plan.outcome = (wall, 2_500_000, 4242, None)  # 2.5 ms
    assert channel.send_frame(encode_frame(plan.report()))
    channel.close_writer()
    event = HorseReport(plan, channel.drain()).event()
    assert event.status is ExecutionStatus.SUCCESS
    assert event.started_at == datetime(2025, 11, 24, 16, 0, 0, 123456, tzinfo=UTC)
    assert event.finished_at == datetime(2025, 11, 24, 16, 0, 0, 125956, tzinfo=UTC)
    assert event.duration_ms == 2.5
    assert event.pid == 4242
    assert (event.exec_id, event.job_id, event.attempt) == ("rq:1:2", "jobs.report", 1)
    assert event.app_version == "1.2.3"
    assert (event.stdout, event.error_type, event.trace_id) == (None, None, None)


def test_a_truncated_frame_is_dropped_and_the_rest_kept() -> None:
    _, fields, _ = _failed_run()
    wire = to_wire(dict(fields))
    channel = HorseChannel()
    assert channel.send_frame(encode_frame(wire))
    os.write(channel._writer, b"\x00\x00\x10\x00partial")
    channel.close_writer()
    assert decode_frames(channel.drain()) == [wire]


def test_an_empty_report_is_an_error_for_the_exporter_to_count() -> None:
    plan, _, _ = _failed_run()
    with pytest.raises(ValueError, match="empty or malformed"):
        HorseReport(plan, b"").event()


def test_a_report_at_every_limit_fits_the_pipe_opened_for_it() -> None:
    from chronos_integrations.rq._channel import report_size

    limit = 10_000
    run = RunCapture("jobs.report", max_log_bytes=limit).start()
    try:
        raise ValueError("é" * 20_000)
    except ValueError as error:
        fields = run.conclude(error=error, stdout="ü" * 30_000, stderr="€" * 30_000)
    assert fields is not None
    fields = to_wire(fields)
    assert len(encode_frame(fields)) <= report_size(limit)
    channel = HorseChannel(report_size(limit))
    assert channel.capacity >= report_size(limit), "the default limit needs no larger pipe"
    assert channel.send_frame(encode_frame(fields))
    channel.close_writer()
    assert decode_frames(channel.drain()) == [fields]


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


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"labels": tuple(f"label-{n}-" + "x" * 300 for n in range(80))},
        {"queue": "q" * 300, "worker": None, "app_version": "v" * 200},
        {"app_version": None, "labels": ()},
    ],
)
def test_the_wire_form_of_a_plain_success_is_its_events(changes: dict[str, Any]) -> None:
    channel = HorseChannel()
    plan = _plan(channel)
    for name, value in changes.items():
        setattr(plan, name, value)
    for wall in (1_764_000_000_123_456_789, 1_764_000_000_999_999_999, 1_000_000):
        plan.outcome = (wall, 1_234_567, 77, None)
        report = HorseReport(plan, encode_frame(plan.report()))
        assert report.wire() == report.event().to_wire()
    plan.outcome = (1_764_000_000_000_000_000, 5, 77, "ab" * 16)
    report = HorseReport(plan, encode_frame(plan.report()))
    assert report.wire()["traceId"] == "ab" * 16
    assert report.wire() == report.event().to_wire()


def test_the_wire_form_of_other_outcomes_is_their_events() -> None:
    plan, fields, finished = _failed_run()
    report = HorseReport(plan, encode_frame(to_wire(dict(fields))))
    assert report.wire() == finished.to_wire()


def test_a_run_with_an_invalid_id_fails_to_encode_as_it_fails_to_build() -> None:
    plan = _plan()
    plan.job_id = ""
    plan.outcome = (1_764_000_000_000_000_000, 5, 77, None)
    report = HorseReport(plan, encode_frame(plan.report()))
    with pytest.raises(ValueError, match="job_id"):
        report.wire()


def test_a_plain_success_is_written_by_the_horse_as_the_job_returns() -> None:
    # No call of ours between the job's return and the write (each would cost the horse page
    # copies); `perform_job` then has nothing left to send.
    from chronos_integrations.rq._worker import HorseCall

    plan = _plan()
    timed = HorseCall()
    timed.arm(lambda: 42, plan, object())
    assert timed() == 42
    assert plan.sent
    assert plan.outcome is not None
    plan.channel.close_writer()
    assert decode_frames(plan.channel.drain()) == [plan.outcome]


def test_a_relay_plan_carries_the_facts_and_the_workers_trace() -> None:
    plan = _plan()
    plan.outcome = (1_700_000_000_000_000_000, 2_000_000, 7, None)
    relayed = HorsePlan.from_facts(plan.facts)
    direct = HorseReport(plan, encode_frame(plan.report())).wire()
    report = HorseReport(relayed, encode_frame(plan.report()), "ab" * 16)
    assert report.wire() == {**direct, "traceId": "ab" * 16}
    assert report.event().to_wire() == report.wire()
