"""Chronos Synapse SDK: capture every run of every job and send it to a Chronos server.

The public surface is what `__all__` lists; every `_module` is private.

Every name is imported on first use (PEP 562): `import chronos_core` loads nothing but this
module, and a process that only uses some of the SDK loads only that. An RQ worker that hands
its runs to an exporter in another process never loads pydantic or httpx; a Celery worker
never loads the runner or the query API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chronos_core._version import __version__

if TYPE_CHECKING:
    from chronos_core._capture import CaptureOptions, RunCapture, capture
    from chronos_core._client import AsyncChronosClient, ChronosClient
    from chronos_core._config import ChronosSettings
    from chronos_core._default import configure, get_exporter
    from chronos_core._exceptions import (
        AuthenticationError,
        ChronosError,
        ConfigurationError,
        ConnectError,
        HTTPStatusError,
        RejectedError,
        RequestTimeout,
        RetryableStatusError,
        TransportError,
    )
    from chronos_core._exporter import BatchExporter, ExporterStats
    from chronos_core._models import (
        ExecutionBatch,
        ExecutionEvent,
        ExecutionIngested,
        ExecutionStatus,
        IngestResult,
        ItemError,
        JobDefinition,
        JobRegistration,
        JobTrigger,
        RegisterResult,
        RunMode,
        Source,
    )
    from chronos_core._monitor import monitor
    from chronos_core._query import AsyncChronosAPI, ChronosAPI
    from chronos_core._read_models import (
        AnalyticsSummary,
        ExecutionPage,
        ExecutionSummary,
        JobDetail,
        JobRanking,
        JobSummary,
        RunStats,
        TimeSeries,
        TimeSeriesPoint,
        VersionComparison,
        VersionSummary,
    )
    from chronos_core._redact import Redactor
    from chronos_core._retry import RetryPolicy
    from chronos_core._sink import EventSink
    from chronos_core._spool import Spool
    from chronos_core._tracing import current_trace_id
    from chronos_core._truncate import truncate_text
    from chronos_core._versions import detect_app_version, signature_hash
    from chronos_core.runner import ChronosRunner

# name -> module, for the names imported on first use
_LAZY: dict[str, str] = {
    "AsyncChronosClient": "chronos_core._client",
    "AuthenticationError": "chronos_core._exceptions",
    "BatchExporter": "chronos_core._exporter",
    "CaptureOptions": "chronos_core._capture",
    "ChronosClient": "chronos_core._client",
    "ChronosError": "chronos_core._exceptions",
    "ChronosSettings": "chronos_core._config",
    "ConfigurationError": "chronos_core._exceptions",
    "ConnectError": "chronos_core._exceptions",
    "EventSink": "chronos_core._sink",
    "ExecutionBatch": "chronos_core._models",
    "ExecutionEvent": "chronos_core._models",
    "ExecutionIngested": "chronos_core._models",
    "ExecutionStatus": "chronos_core._limits",
    "ExporterStats": "chronos_core._exporter",
    "HTTPStatusError": "chronos_core._exceptions",
    "IngestResult": "chronos_core._models",
    "ItemError": "chronos_core._models",
    "JobDefinition": "chronos_core._models",
    "JobRegistration": "chronos_core._models",
    "JobTrigger": "chronos_core._models",
    "Redactor": "chronos_core._redact",
    "RegisterResult": "chronos_core._models",
    "RejectedError": "chronos_core._exceptions",
    "RequestTimeout": "chronos_core._exceptions",
    "RetryPolicy": "chronos_core._retry",
    "RetryableStatusError": "chronos_core._exceptions",
    "RunCapture": "chronos_core._capture",
    "RunMode": "chronos_core._limits",
    "Source": "chronos_core._limits",
    "Spool": "chronos_core._spool",
    "TransportError": "chronos_core._exceptions",
    "capture": "chronos_core._capture",
    "configure": "chronos_core._default",
    "current_trace_id": "chronos_core._tracing",
    "detect_app_version": "chronos_core._versions",
    "get_exporter": "chronos_core._default",
    "signature_hash": "chronos_core._versions",
    "truncate_text": "chronos_core._truncate",
    "monitor": "chronos_core._monitor",
    "AsyncChronosAPI": "chronos_core._query",
    "ChronosAPI": "chronos_core._query",
    "AnalyticsSummary": "chronos_core._read_models",
    "ExecutionPage": "chronos_core._read_models",
    "ExecutionSummary": "chronos_core._read_models",
    "JobDetail": "chronos_core._read_models",
    "JobRanking": "chronos_core._read_models",
    "JobSummary": "chronos_core._read_models",
    "RunStats": "chronos_core._read_models",
    "TimeSeries": "chronos_core._read_models",
    "TimeSeriesPoint": "chronos_core._read_models",
    "VersionComparison": "chronos_core._read_models",
    "VersionSummary": "chronos_core._read_models",
    "ChronosRunner": "chronos_core.runner",
}

__all__ = [
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


# Hidden from type checkers: a module `__getattr__` would make every misspelt name `Any`;
# they see the names imported under TYPE_CHECKING above instead.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
