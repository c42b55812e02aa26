"""The OpenTelemetry trace a run belongs to, when the application traces.

OpenTelemetry is optional and never imported here: a span can only be active if the
application has already imported `opentelemetry.trace`, so looking the module up in
`sys.modules` answers the question for the price of a dict lookup, and costs nothing at all
(not even an import attempt) in applications that do not trace.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["current_trace_id"]

_OTEL_TRACE_MODULE = "opentelemetry.trace"

logger = logging.getLogger("chronos_core.tracing")


def current_trace_id() -> str | None:
    """The active span's trace id as 32 lowercase hex digits, or None if there is none."""
    trace: Any = sys.modules.get(_OTEL_TRACE_MODULE)
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x")
    except Exception:  # an incompatible or broken OpenTelemetry must not break a run
        logger.debug("could not read the current OpenTelemetry span", exc_info=True)
        return None
