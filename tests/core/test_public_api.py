"""The public surface of `chronos_core` is what `__all__` lists, and it changes on purpose only."""

from __future__ import annotations

import chronos_core

PUBLIC = [
    "AnalyticsSummary",
    "AsyncChronosAPI",
    "AsyncChronosClient",
    "AuthenticationError",
    "BatchExporter",
    "CaptureOptions",
    "ChronosAPI",
    "ChronosClient",
    "ChronosError",
    "ChronosRunner",
    "ChronosSettings",
    "ConfigurationError",
    "ConnectError",
    "EventSink",
    "ExecutionBatch",
    "ExecutionEvent",
    "ExecutionIngested",
    "ExecutionPage",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExporterStats",
    "HTTPStatusError",
    "IngestResult",
    "ItemError",
    "JobDefinition",
    "JobDetail",
    "JobRanking",
    "JobRegistration",
    "JobSummary",
    "JobTrigger",
    "Redactor",
    "RegisterResult",
    "RejectedError",
    "RequestTimeout",
    "RetryPolicy",
    "RetryableStatusError",
    "RunCapture",
    "RunMode",
    "RunStats",
    "Source",
    "Spool",
    "TimeSeries",
    "TimeSeriesPoint",
    "TransportError",
    "VersionComparison",
    "VersionSummary",
    "__version__",
    "capture",
    "configure",
    "current_trace_id",
    "detect_app_version",
    "get_exporter",
    "monitor",
    "signature_hash",
    "truncate_text",
]


def test_all_is_pinned_and_sorted() -> None:
    assert chronos_core.__all__ == PUBLIC
    assert sorted(PUBLIC) == PUBLIC


def test_every_public_name_exists_and_is_documented() -> None:
    for name in PUBLIC:
        value = getattr(chronos_core, name)
        if name != "__version__":
            assert (getattr(value, "__doc__", None) or "").strip(), f"{name} has no docstring"
