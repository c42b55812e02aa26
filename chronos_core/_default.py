"""The process-wide exporter: a convenience on top of `BatchExporter`, not a requirement.

Integrations take an `exporter=` argument; when it is omitted they share this one, so a
process that instruments Celery and APScheduler still sends through one queue and one
thread.
"""

from __future__ import annotations

import threading
from typing import Any

from chronos_core._exporter import BatchExporter

__all__ = ["configure", "get_exporter"]

_lock = threading.Lock()
_default: BatchExporter | None = None


def configure(**settings: Any) -> BatchExporter:
    """Create the shared exporter from `settings` (and `CHRONOS_*`), replacing any earlier one.

    The earlier exporter is flushed and shut down (bounded by its shutdown timeout).
    """
    global _default
    exporter = BatchExporter(**settings)
    with _lock:
        previous, _default = _default, exporter
    if previous is not None:
        previous.shutdown()
    return exporter


def get_exporter() -> BatchExporter:
    """The shared exporter, created from the `CHRONOS_*` environment on first use."""
    global _default
    exporter = _default
    if exporter is not None:
        return exporter
    with _lock:
        if _default is None:
            _default = BatchExporter()
        return _default
