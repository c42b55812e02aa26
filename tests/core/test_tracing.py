from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chronos_core._capture import capture
from chronos_core._tracing import current_trace_id
from tests.core.conftest import ListSink


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
