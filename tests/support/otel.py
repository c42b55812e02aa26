"""A span context attached to OpenTelemetry's current context by hand, without a tracer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@contextmanager
def span_context_attached() -> Iterator[str]:
    """Attach a remote span context with `TRACE_ID` (as a propagator would); yield the id."""
    from opentelemetry import context, trace

    span_context = trace.SpanContext(
        trace_id=int(TRACE_ID, 16),
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=trace.TraceFlags(1),
    )
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span_context)))
    try:
        yield TRACE_ID
    finally:
        context.detach(token)
