from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chronos_core._capture import capture
from chronos_core._tracing import current_trace_id
from tests.core.conftest import ListSink
from tests.support.otel import span_context_attached


@pytest.fixture
def provider() -> TracerProvider:
    # Used directly rather than installed globally: the global provider can be set only once.
    return TracerProvider()


def test_trace_id_inside_a_span(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("nightly-report") as span:
        expected = format(span.get_span_context().trace_id, "032x")
        assert current_trace_id() == expected
    assert len(expected) == 32


def test_no_trace_id_outside_a_span() -> None:
    assert current_trace_id() is None


def test_no_trace_id_when_opentelemetry_is_not_loaded(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    with provider.get_tracer("tests").start_as_current_span("job"):
        monkeypatch.delitem(sys.modules, "opentelemetry.trace")
        assert current_trace_id() is None


def test_captured_run_carries_the_trace_id(provider: TracerProvider, sink: ListSink) -> None:
    with (
        provider.get_tracer("tests").start_as_current_span("job") as span,
        capture("job-1", sink=sink),
    ):
        pass
    assert sink.only.trace_id == format(span.get_span_context().trace_id, "032x")
    assert sink.only.to_wire()["traceId"] == sink.only.trace_id


def test_a_span_context_attached_by_hand_is_found_without_a_tracer() -> None:
    with span_context_attached() as trace_id:
        assert current_trace_id() == trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert current_trace_id() is None


def test_a_context_with_other_values_but_no_span_has_no_trace_id() -> None:
    from opentelemetry import baggage, context

    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert current_trace_id() is None
    finally:
        context.detach(token)


def test_an_empty_context_is_read_from_opentelemetrys_context_variable(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import context

    from chronos_core import _tracing

    assert current_trace_id() is None
    assert _tracing.otel_context is not None
    # The fast path answers an empty context without asking OpenTelemetry...
    calls: list[int] = []
    original = context.get_current
    monkeypatch.setattr(context, "get_current", lambda: calls.append(1) or original())
    assert current_trace_id() is None
    assert calls == []
    # ...and a span in the context still takes the full lookup.
    with provider.get_tracer("tests").start_as_current_span("job") as span:
        assert current_trace_id() == format(span.get_span_context().trace_id, "032x")
    # A runtime context replaced since (another OpenTelemetry setup) is not trusted.
    monkeypatch.setattr(context, "_RUNTIME_CONTEXT", object())
    assert current_trace_id() is None
    assert calls, "the replaced runtime context was asked through get_current()"
