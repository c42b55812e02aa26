"""Storage behind small protocols: embedded SQLite, or Redis (telemetry) + PostgreSQL (accounts).

Implementations are imported lazily by `build_stores`, so the embedded server never imports
redis or asyncpg.
"""

from chronos_server.storage._metrics import (
    METRICS_TTL_SECONDS,
    MetricsBucket,
    Resolution,
    histogram_index,
    histogram_value,
)
from chronos_server.storage._protocols import (
    AccountStore,
    ApiKeyRecord,
    EventBroker,
    IngestOutcome,
    TelemetryStore,
    User,
)
from chronos_server.storage._stores import Stores, build_stores

__all__ = [
    "METRICS_TTL_SECONDS",
    "AccountStore",
    "ApiKeyRecord",
    "EventBroker",
    "IngestOutcome",
    "MetricsBucket",
    "Resolution",
    "Stores",
    "TelemetryStore",
    "User",
    "build_stores",
    "histogram_index",
    "histogram_value",
]
