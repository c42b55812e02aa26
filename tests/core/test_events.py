from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from chronos_core import _events, _trusted
from chronos_core._events import duration_ms, wire_timestamp
from chronos_core._models import (
    MAX_METADATA_BYTES,
    ExecutionEvent,
    ExecutionStatus,
    Source,
    format_timestamp,
)


def _all_fields() -> dict[str, object]:
    started = datetime(2025, 9, 1, 12, tzinfo=UTC)
    return {
        "exec_id": "job-1:1",
        "job_id": "job-1",
        "status": ExecutionStatus.FAILED,
        "started_at": started,
        "finished_at": started.replace(second=1),
        "duration_ms": 1000.5,
        "exit_code": 1,
        "error_message": "boom",
        "error_type": "ValueError",
        "error_stack": "Traceback...",
        "stdout": "out",
        "stderr": "err",
        "attempt": 2,
        "labels": ["a"],
        "metadata": {"k": [1, 2]},
        "job_version": "1",
        "app_version": "2",
        "code_snippet": "> 1 | x",
        "code_language": "python",
        "source": Source.RQ,
        "host": "h",
        "pid": 1,
        "queue": "q",
        "worker": "w",
        "trigger_id": "t",
        "scheduled_for": started,
        "trace_id": "0" * 32,
    }


def test_fast_construction_is_in_use_and_matches_validation() -> None:
    values = _all_fields()
    assert set(values) == set(ExecutionEvent.model_fields)  # a new field must be added here

    assert _trusted.trusted_event is _trusted._construct
    built = _trusted.trusted_event(values)
    validated = ExecutionEvent.model_validate(values)
    assert built == validated
    assert built.to_wire() == validated.to_wire()
    assert built.model_fields_set == validated.model_fields_set


def test_fields_left_out_get_their_defaults() -> None:
    values = {k: v for k, v in _all_fields().items() if k in _trusted._ALWAYS_SET}
    built = _trusted.trusted_event(values)
    assert built == ExecutionEvent.model_validate(values)
    assert built.trace_id is None
    assert built.stdout is None


def test_metadata_is_made_plain_json() -> None:
    cleaned = _events.clean_metadata({"when": datetime(2025, 1, 1, tzinfo=UTC), 1: "int key"})
    assert cleaned == {"when": "2025-01-01 00:00:00+00:00", "1": "int key"}
    assert _events.clean_metadata({(1, 2): "tuple key"}) == {
        "chronosMetadataDropped": "not JSON-serializable"
    }


def test_plain_metadata_is_kept_as_is_and_copied() -> None:
    metadata = {"rqJobId": "abc", "n": 3, "ratio": 0.5, "ok": True, "none": None}
    cleaned = _events.clean_metadata(metadata)
    assert cleaned == metadata
    assert cleaned is not metadata


def test_plain_metadata_over_the_limit_is_still_dropped() -> None:
    big = {"text": "x" * (MAX_METADATA_BYTES + 10)}
    assert _events.clean_metadata(big) == {
        "chronosMetadataDropped": f"{MAX_METADATA_BYTES + 22} bytes, over {MAX_METADATA_BYTES}"
    }
    # Escaped characters count as the schema counts them: six bytes each for a control one.
    escaped = {"t": "\x01" * (MAX_METADATA_BYTES // 6)}
    assert "chronosMetadataDropped" in _events.clean_metadata(escaped)
    # A value that is not plain JSON goes through the JSON round trip, as before.
    assert _events.clean_metadata({"big": 2**60}) == {"big": 2**60}
    assert _events.clean_metadata({"when": UTC}) == {"when": "UTC"}


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        ("2025-09-01T12:00:00.125Z", datetime(2025, 9, 1, 12, 0, 0, 125_000, tzinfo=UTC)),
        ("2025-09-01T14:00:00.125+02:00", datetime(2025, 9, 1, 12, 0, 0, 125_000, tzinfo=UTC)),
        ("2025-09-01T12:00:00.125", datetime(2025, 9, 1, 12, 0, 0, 125_000, tzinfo=UTC)),
        (" 2025-09-01 12:00:00 ", datetime(2025, 9, 1, 12, tzinfo=UTC)),
        (1_756_728_000_125, datetime(2025, 9, 1, 12, 0, 0, 125_000, tzinfo=UTC)),
        ("1756728000125", datetime(2025, 9, 1, 12, 0, 0, 125_000, tzinfo=UTC)),
        (datetime(2025, 9, 1, 12), datetime(2025, 9, 1, 12, tzinfo=UTC)),
    ],
)
def test_timestamps_are_read_as_utc(received: object, expected: datetime) -> None:
    event = ExecutionEvent.model_validate(
        {"execId": "e", "jobId": "j", "status": "success", "startedAt": received}
    )
    assert event.started_at == expected
    assert event.started_at.tzinfo is not None


@pytest.mark.parametrize("received", ["yesterday", "2025-13-01T00:00:00Z", True, None])
def test_a_bad_timestamp_names_its_field(received: object) -> None:
    with pytest.raises(ValidationError) as caught:
        ExecutionEvent.model_validate(
            {"execId": "e", "jobId": "j", "status": "success", "startedAt": received}
        )
    assert [error["loc"] for error in caught.value.errors()] == [("startedAt",)]


@pytest.mark.parametrize(
    "micros", [0, 999, 1_000, 1_764_000_000_123_456, 1_764_000_000_999_999, 4_102_444_799_999_999]
)
def test_wire_timestamps_are_the_models_timestamps(micros: int) -> None:
    value = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert wire_timestamp(micros) == format_timestamp(value)
    assert wire_timestamp(micros) == wire_timestamp(micros)  # the cached second too


@pytest.mark.parametrize(
    ("duration_ns", "expected"),
    [
        (0, 0.0),
        (499, 0.0),
        (500, 0.001),
        (1_234_567, 1.235),
        (1_234_499, 1.234),
        (86_400 * 10**9, 86_400_000.0),
    ],
)
def test_durations_are_milliseconds_to_the_microsecond(duration_ns: int, expected: float) -> None:
    assert duration_ms(duration_ns) == expected


def test_a_duration_is_written_with_at_most_three_decimals() -> None:
    for duration_ns in range(0, 10**9, 7_777_777):
        text = repr(duration_ms(duration_ns))
        assert len(text.split(".")[1]) <= 3, text
        assert abs(float(text) - duration_ns / 1e6) <= 0.0005 + 1e-9
