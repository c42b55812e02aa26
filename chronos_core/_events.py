"""Making `ExecutionEvent`s from values the SDK produced itself.

Capture builds one event per run, so building it is on every job's path. The values are
brought within the schema's limits here and by the caller, and the event is then constructed
without validation (see `trusted_event`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chronos_core._models import MAX_METADATA_BYTES, ExecutionEvent, ExecutionStatus, Source

__all__ = ["clean_metadata", "clip", "trusted_event", "utc_from_ns", "wire_timestamp"]

logger = logging.getLogger("chronos_core.capture")


def clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON within the schema's size limit (measured as the schema measures it)."""
    if not metadata:
        return {}
    if _is_small_plain(metadata):
        return dict(metadata)
    try:
        plain: dict[str, Any] = json.loads(json.dumps(metadata, default=str))
        size = len(json.dumps(plain))
    except (TypeError, ValueError) as exc:
        logger.warning("chronos: run metadata is not JSON-serializable, dropped: %s", exc)
        return {"chronosMetadataDropped": "not JSON-serializable"}
    if size > MAX_METADATA_BYTES:
        logger.warning("chronos: run metadata is %d bytes, over the limit; dropped", size)
        return {"chronosMetadataDropped": f"{size} bytes, over {MAX_METADATA_BYTES}"}
    return plain


# JSON scalars whose JSON round trip gives back an equal value of the same type.
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})
# The most bytes one character of a string takes in `json.dumps` output (an astral
# character is two `\uXXXX` escapes), and a bound on any other scalar's text (an int is
# only taken below 2**53, 16 digits and a sign; a float's repr is at most 24 characters).
_JSON_BYTES_PER_CHAR = 12
_JSON_SCALAR_BYTES = 32


def _is_small_plain(metadata: dict[str, Any]) -> bool:
    """Whether `metadata` is already plain JSON surely within the limit: str keys, scalar
    values. Such a dict is what the JSON round trip would return, so it is skipped: the
    usual metadata of a run (an id or two) then costs no encoding at all."""
    if len(metadata) > 64:
        return False
    size = 2
    for key, value in metadata.items():
        kind = type(value)
        if type(key) is not str or kind not in _PLAIN_SCALARS:
            return False
        if kind is str:
            size += _JSON_BYTES_PER_CHAR * len(value) + 2
        elif kind is int and not -(2**53) < value < 2**53:
            return False
        else:
            size += _JSON_SCALAR_BYTES
        size += _JSON_BYTES_PER_CHAR * len(key) + 4
    return size <= MAX_METADATA_BYTES


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_from_ns(wall_ns: int) -> datetime:
    """`time.time_ns()` as an aware UTC datetime, to the microsecond (exact, unlike a float)."""
    return _EPOCH + timedelta(microseconds=wall_ns // 1_000)


# The last whole second `wire_timestamp` formatted, and its text: a worker finishes many runs
# within one second. One tuple, read and replaced in one step: threads may share it.
_last_second: tuple[int, str] = (-1, "")
# The end of a timestamp for each millisecond (no format to parse per call).
_MILLISECONDS = tuple(f".{n:03d}Z" for n in range(1_000))


def wire_timestamp(micros: int) -> str:
    """Microseconds since the epoch as the wire writes a timestamp (`format_timestamp`'s text:
    UTC, milliseconds, `Z`), without making a datetime. For integrations that build an event's
    wire form directly (`DeferredEvent.wire`)."""
    global _last_second
    second = micros // 1_000_000
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return cached[1] + _MILLISECONDS[micros // 1_000 % 1_000]


def duration_ms(duration_ns: int) -> float:
    """Nanoseconds as the wire's milliseconds, to the microsecond (half a microsecond rounds
    up). Integer steps and one division: `round(ns / 1e6, 3)` costs three times as much."""
    return (duration_ns + 500) // 1_000 / 1_000


def clip(value: str | None, limit: int) -> str | None:
    """`value` cut to `limit` characters; None for None or empty."""
    return str(value)[:limit] if value else None


_set_attribute = object.__setattr__
# Fields the SDK always sets; every other field of ExecutionEvent must default to None.
_ALWAYS_SET = frozenset(
    {"exec_id", "job_id", "status", "started_at", "attempt", "labels", "metadata"}
)
_UNSET_FIELDS = {name: None for name in ExecutionEvent.model_fields if name not in _ALWAYS_SET}


def _construct(values: dict[str, Any]) -> ExecutionEvent:
    """An event from values already within the schema's limits, without validating them.

    Does what `model_construct` does, minus its per-field loop: validation costs ~8 us and
    `model_construct` ~20 us per event, this ~3 us. `trusted_event` checks once, at import,
    that the result is the same as a validated event's; if pydantic ever changes how models
    are laid out, events are validated instead.
    """
    fields = _UNSET_FIELDS.copy()
    fields.update(values)
    event = ExecutionEvent.__new__(ExecutionEvent)
    _set_attribute(event, "__dict__", fields)
    _set_attribute(event, "__pydantic_fields_set__", set(values))
    _set_attribute(event, "__pydantic_extra__", None)
    _set_attribute(event, "__pydantic_private__", None)
    return event


def _construct_is_sound() -> bool:
    defaults_are_none = all(
        field.default is None and field.default_factory is None
        for name, field in ExecutionEvent.model_fields.items()
        if name not in _ALWAYS_SET
    )
    sample: dict[str, Any] = {
        "exec_id": "job:1",
        "job_id": "job",
        "status": ExecutionStatus.FAILED,
        "started_at": datetime(2025, 9, 1, 12, tzinfo=UTC),
        "finished_at": datetime(2025, 9, 1, 12, 0, 1, tzinfo=UTC),
        "duration_ms": 1000.0,
        "attempt": 1,
        "labels": ["a"],
        "metadata": {"k": 1},
        "error_type": "ValueError",
        "source": Source.RUNNER,
    }
    try:
        built, validated = _construct(sample), ExecutionEvent.model_validate(sample)
        return defaults_are_none and built == validated and built.to_wire() == validated.to_wire()
    except Exception:
        return False


def _validated(values: dict[str, Any]) -> ExecutionEvent:
    return ExecutionEvent.model_validate(values)


trusted_event: Callable[[dict[str, Any]], ExecutionEvent] = (
    _construct if _construct_is_sound() else _validated
)
