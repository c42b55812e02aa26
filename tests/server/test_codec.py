"""What the stores keep of an execution reads back as the validated event."""

from __future__ import annotations

from chronos_core._models import ExecutionEvent
from chronos_server.storage._codec import decode_event, encode_event, encode_received


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
