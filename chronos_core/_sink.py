"""What capture and the integrations hand finished events to."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from chronos_core._models import ExecutionEvent

__all__ = ["EventSink"]


@runtime_checkable
class EventSink(Protocol):
    """Anything that accepts events without blocking; `BatchExporter` is the real one."""

    def record(self, event: ExecutionEvent) -> bool:
        """Queue `event` for delivery; False if it was dropped. Never blocks, never raises."""
        ...
