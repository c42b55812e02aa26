"""Storage behind small protocols: embedded SQLite, or Redis (telemetry) + PostgreSQL (accounts).

Implementations are imported lazily by `build_stores`, so the embedded server never imports
redis or asyncpg.
"""

from chronos_server.storage._metrics import (
    METRICS_TTL_SECONDS,
    TENANT_SCOPE,
    MetricsBucket,
    Resolution,
    cover,
    histogram_index,
    histogram_value,
)
from chronos_server.storage._protocols import (
    AccountStore,
    ApiKeyRecord,
    BrokerEntry,
    ClaimState,
    EventBroker,
    IngestOutcome,
    OnceArming,
    TelemetryStore,
    TriggerClaim,
    TriggerStore,
    User,
)
from chronos_server.storage._queries import (
    Cursor,
    ExecutionPage,
    ExecutionQuery,
    LastRun,
    VersionStats,
    epoch_ms,
)
from chronos_server.storage._stores import Stores, build_stores

__all__ = [
    "METRICS_TTL_SECONDS",
    "TENANT_SCOPE",
    "AccountStore",
    "ApiKeyRecord",
    "BrokerEntry",
    "ClaimState",
    "Cursor",
    "EventBroker",
    "ExecutionPage",
    "ExecutionQuery",
    "IngestOutcome",
    "LastRun",
    "MetricsBucket",
    "OnceArming",
    "Resolution",
    "Stores",
    "TelemetryStore",
    "TriggerClaim",
    "TriggerStore",
    "User",
    "VersionStats",
    "build_stores",
    "cover",
    "epoch_ms",
    "histogram_index",
    "histogram_value",
]
