"""Values of an event's fields, made from what the SDK measured itself.

Capture builds one event per run, so this is on every job's path. The values are brought
within the schema's limits here and by the caller; the event is then constructed without
validation (`_trusted.trusted_event`). This module is plain Python: a process that never
builds a model (an RQ worker and its work horses) imports it without pydantic.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from chronos_core._limits import MAX_METADATA_BYTES

__all__ = ["clean_metadata", "clip", "duration_ms", "utc_from_ns", "wire_timestamp"]

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
