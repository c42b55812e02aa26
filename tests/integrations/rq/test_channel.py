"""The pipe from a work horse to its parent: events cross it unchanged."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from chronos_core import ExecutionEvent, ExecutionStatus, RunCapture, Source
from chronos_integrations.rq._channel import HorseChannel


class _Keep:
    def __init__(self) -> None:
        self.events: list[ExecutionEvent] = []

    def record(self, event: ExecutionEvent) -> bool:
        self.events.append(event)
        return True


def _failed_event() -> ExecutionEvent:
    sink = _Keep()
    run = RunCapture(
        "jobs.report",
        sink=sink,
        source=Source.RQ,
        exec_id="rq:1:2",
        labels=["a"],
        metadata={"rqJobId": "1"},
        queue="default",
        scheduled_for=datetime(2025, 9, 1, tzinfo=UTC),
    ).start()
    try:
        raise ValueError("boom")
    except ValueError as error:
        run.finish(error=error, stdout="out")
    return sink.events[0]


def test_events_cross_the_pipe_unchanged() -> None:
    event = _failed_event()
    assert event.status is ExecutionStatus.FAILED
    assert event.error_stack
    assert event.code_snippet
    channel = HorseChannel()
    assert channel.send([event, event]) == []
    channel.close_writer()
    received = channel.receive()
    assert received == [event, event]
    assert received[0].model_fields_set == event.model_fields_set
    assert received[0].to_wire() == event.to_wire()


def test_a_truncated_frame_is_dropped_and_the_rest_kept() -> None:
    event = _failed_event()
    channel = HorseChannel()
    assert channel.send([event]) == []
    os.write(channel._writer, b"\x00\x00\x10\x00partial")
    channel.close_writer()
    assert channel.receive() == [event]
