"""What capture and the integrations hand finished events to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from chronos_core._models import ExecutionEvent

__all__ = ["DeferredEvent", "EventSink"]


@runtime_checkable
class EventSink(Protocol):
    """Anything that accepts events without blocking; `BatchExporter` is the real one."""

    def record(self, event: ExecutionEvent) -> bool:
        """Queue `event` for delivery; False if it was dropped. Never blocks, never raises."""
        ...


class DeferredEvent(Protocol):
    """A finished run whose `ExecutionEvent` is built later, off the job's thread.

    Integrations whose runs are short and many (Celery tasks) note a run's few facts on the
    job's thread and leave making the event to the exporter's thread, which calls `event()`
    once, when it encodes the batch. The object must not change after it is handed over.

    It may also have a `wire()` method returning `event().to_wire()`, the event's JSON form,
    made more cheaply, or a `wire_json()` method returning that form already encoded (a JSON
    object, as bytes): `BatchExporter` then uses the first of these it finds instead of
    `event()`.
    """

    def event(self) -> ExecutionEvent:
        """The run's event (may raise: the exporter drops it and counts `internal_error`)."""
        ...
