"""Chronos Synapse SDK: capture every run of every job and send it to a Chronos server.

The public surface is what `__all__` lists; every `_module` is private.
"""

from chronos_core._client import AsyncChronosClient, ChronosClient
from chronos_core._config import ChronosSettings
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
from chronos_core._retry import RetryPolicy
from chronos_core._sink import EventSink
from chronos_core._spool import Spool
from chronos_core._version import __version__

__all__ = [
    "AsyncChronosClient",
    "AuthenticationError",
    "BatchExporter",
    "ChronosClient",
    "ChronosError",
    "ChronosSettings",
    "ConfigurationError",
    "ConnectError",
    "EventSink",
    "ExecutionBatch",
    "ExecutionEvent",
    "ExecutionIngested",
    "ExecutionStatus",
    "ExporterStats",
    "HTTPStatusError",
    "IngestResult",
    "ItemError",
    "JobDefinition",
    "JobRegistration",
    "JobTrigger",
    "RegisterResult",
    "RejectedError",
    "RequestTimeout",
    "RetryPolicy",
    "RetryableStatusError",
    "RunMode",
    "Source",
    "Spool",
    "TransportError",
    "__version__",
]
