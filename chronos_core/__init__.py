"""Chronos Synapse SDK: capture every run of every job and send it to a Chronos server.

The public surface is what `__all__` lists; every `_module` is private.
"""

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
from chronos_core._version import __version__
from chronos_core._versions import detect_app_version, signature_hash
from chronos_core.runner import ChronosRunner

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
