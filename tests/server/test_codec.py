"""What the stores keep of an execution reads back as the validated event."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter

from chronos_core._models import ExecutionEvent, ExecutionIngested
from chronos_server.storage._codec import (
    decode_event,
    decode_ingested,
    encode_event,
    encode_ingested,
    encode_received,
)

# What pydantic writes for a list of summaries: the reference `encode_ingested` must match.
_SUMMARIES: TypeAdapter[list[ExecutionIngested]] = TypeAdapter(list[ExecutionIngested])


def test_received_encoding_round_trips() -> None:
    item = {
        "exec_id": "e1",  # Python names are accepted on the wire too
        "jobId": "j",
        "status": "failed",
        "startedAt": 1_756_728_000_000,  # epoch milliseconds
        "finishedAt": "2025-09-01T12:00:01.250+00:00",
        "durationMs": 1250,
        "errorMessage": None,
        "labels": ["a"],
        "metadata": {"k": 1},
        "someFutureField": {"ignored": True},
        "stdout": "x" * 100,
    }
    event = ExecutionEvent.model_validate(item).model_copy(update={"stdout": "cut"})
    stored = encode_received(item, event)
    assert "someFutureField" not in stored
    assert decode_event(stored) == event
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(
    "started",
    [
        "2025-09-01T12:00:00.125Z",  # what the SDK sends: kept as received
        1_756_728_000_125,  # epoch milliseconds
        "2025-09-01T12:00:00.125+00:00",
        "2025-09-01T14:00:00.125+02:00",
        "2025-09-01T12:00:00.125999Z",
        "2025-09-01T12:00:00Z",
        "2025-09-01T12:00:00.125",  # naive: UTC
        "2025-09-01 12:00:00.125Z",
    ],
)
def test_ingested_summaries_are_what_the_model_writes(started: object) -> None:
    items: list[dict[str, object]] = [
        {"execId": "e1", "jobId": "j", "status": "running", "startedAt": started},
        {
            "exec_id": "e2",
            "job_id": "j",
            "status": "failed",
            "started_at": started,  # Python names: read from the event, not the item
            "finished_at": "2025-09-01T12:00:01.250Z",
            "duration_ms": 1125,
            "exit_code": 3,
        },
        {
            "execId": "e3",
            "jobId": "k",
            "status": "success",
            "startedAt": started,
            "finishedAt": "2025-09-01T13:00:01.250+01:00",
            "durationMs": 0.5,
        },
    ]
    events = [ExecutionEvent.model_validate(item) for item in items]
    fast = encode_ingested(list(zip(items, events, strict=True)))
    expected = _SUMMARIES.dump_json(
        [ExecutionIngested.from_event(e) for e in events], by_alias=True, exclude_none=True
    )
    assert json.loads(fast) == json.loads(expected)
    # Read back as the model reads its own JSON (milliseconds, as the wire has them).
    assert decode_ingested(fast) == decode_ingested(expected)
    assert [s.exec_id for s in decode_ingested(fast)] == ["e1", "e2", "e3"]
