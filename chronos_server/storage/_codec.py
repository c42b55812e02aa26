"""How jobs and executions are serialised inside the stores (compact camelCase JSON)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import msgspec

from chronos_core._models import ExecutionEvent, JobDefinition

__all__ = ["decode_event", "decode_job", "encode_event", "encode_job", "encode_received"]

# Wire name of every field, reachable by its wire name or its Python name.
_WIRE_NAMES: dict[str, str] = {}
for _name, _field in ExecutionEvent.model_fields.items():
    _alias = _field.alias or _name
    _WIRE_NAMES[_name] = _alias
    _WIRE_NAMES[_alias] = _alias


def encode_received(item: Mapping[str, Any], event: ExecutionEvent) -> str:
    """`encode_event` for an item that `event` was validated from, about ten times faster.

    Pydantic serialisation costs ~10 µs an event (timestamps go through Python); this keeps
    the received values of the known fields (already validated, read back through the same
    model) and drops unknown and null ones. Logs come from `event`, which may have truncated
    them.
    """
    kept = {
        _WIRE_NAMES[key]: value
        for key, value in item.items()
        if value is not None and key in _WIRE_NAMES
    }
    for name in ("stdout", "stderr"):
        value = getattr(event, name)
        if value is not None:
            kept[name] = value
    return msgspec.json.encode(kept).decode()


def encode_event(event: ExecutionEvent) -> str:
    """Wire JSON without nulls and defaults: the smallest form that reads back the same."""
    return event.model_dump_json(by_alias=True, exclude_none=True, exclude_defaults=True)


def decode_event(data: str | bytes) -> ExecutionEvent:
    """Inverse of `encode_event`."""
    return ExecutionEvent.model_validate_json(data)


def encode_job(job: JobDefinition) -> str:
    """Wire JSON of a job definition, without nulls."""
    return job.model_dump_json(by_alias=True, exclude_none=True)


@functools.lru_cache(maxsize=4_096)
def decode_job(data: str | bytes) -> JobDefinition:
    """Inverse of `encode_job`.

    Memoised: validating a definition parses its cron and time zone (~0.2 ms), and listing
    jobs decodes the same few hundred definitions on every request. Models are frozen.
    """
    return JobDefinition.model_validate_json(data)
