"""The OpenTelemetry trace a run belongs to, when the application traces.

OpenTelemetry is optional and never imported here: a span can only be active if the
application has already imported `opentelemetry.trace`, so looking the module up in
`sys.modules` answers the question for the price of a dict lookup, and costs nothing at all
(not even an import attempt) in applications that do not trace.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

__all__ = ["current_trace_id"]

_OTEL_TRACE_MODULE = "opentelemetry.trace"
_OTEL_CONTEXT_MODULE = "opentelemetry.context"

logger = logging.getLogger("chronos_core.tracing")

# OpenTelemetry's context module, its runtime context and the ContextVar that one keeps the
# current context in, once found: an empty context (nothing traced, the usual case) is then
# read in one call, where `get_current()` is that variable's `get()` through two Python
# calls. Callers on a hot path may read the variable themselves, as `current_trace_id` does
# (the runtime context checked to be the same one at each read).
otel_context: tuple[Any, Any, ContextVar[Any]] | None = None


def _find_otel_context(module: Any) -> None:
    global otel_context
    runtime = getattr(module, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ == "ContextVarsRuntimeContext" and isinstance(var, ContextVar):
        otel_context = (module, runtime, var)


def current_trace_id() -> str | None:
    """The active span's trace id as 32 lowercase hex digits, or None if there is none.

    A span can only be current if something set a value in OpenTelemetry's current context
    (a tracer's span and a span context attached by hand alike), so an empty context, the usual
    case in a process that imports OpenTelemetry without tracing (redis-py 8 imports it), is
    answered without looking for a span: two calls instead of five.
    """
    otel = otel_context
    if otel is not None and otel[0]._RUNTIME_CONTEXT is otel[1] and not otel[2].get():
        return None
    trace: Any = sys.modules.get(_OTEL_TRACE_MODULE)
    if trace is None:
        return None
    context_module: Any = sys.modules.get(_OTEL_CONTEXT_MODULE)
    if context_module is not None:
        if otel is None:
            _find_otel_context(context_module)
        try:
            if not context_module.get_current():
                return None
        except Exception:  # an incompatible OpenTelemetry: ask for the span as usual
            pass
    try:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x")
    except Exception:  # an incompatible or broken OpenTelemetry must not break a run
        logger.debug("could not read the current OpenTelemetry span", exc_info=True)
        return None
