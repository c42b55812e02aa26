"""`trusted_event`: an `ExecutionEvent` from values the SDK produced itself, unvalidated.

Capture builds one event per run; the values were brought within the schema's limits by
`_events` and the caller, so the model is constructed without validating them again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chronos_core._models import ExecutionEvent, ExecutionStatus, Source

__all__ = ["trusted_event"]

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
