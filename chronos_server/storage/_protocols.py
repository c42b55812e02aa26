"""What the server needs from storage: two small protocols and the records they exchange.

`TelemetryStore` holds jobs, executions and metrics; `AccountStore` holds users and API keys;
`EventBroker` carries `execution:ingested` to realtime listeners of one tenant. Embedded mode
implements all three over one SQLite file (and an in-process broker); production uses Redis for
telemetry and pub/sub and PostgreSQL for accounts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from chronos_core._models import ExecutionEvent, ExecutionIngested, JobDefinition
from chronos_server.storage._metrics import MetricsBucket, Resolution
from chronos_server.storage._queries import ExecutionPage, ExecutionQuery, LastRun, VersionStats

__all__ = [
    "AccountStore",
    "ApiKeyRecord",
    "BrokerEntry",
    "ClaimState",
    "EventBroker",
    "IngestOutcome",
    "OnceArming",
    "TelemetryStore",
    "TriggerClaim",
    "TriggerStore",
    "User",
]


@dataclass(frozen=True, slots=True)
class User:
    """An account; its id is the tenant of everything its keys send."""

    id: str
    email: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored API key. Only the hash of the secret is kept; `prefix` identifies it."""

    id: str
    user_id: str
    prefix: str
    key_hash: bytes
    name: str
    created_at: datetime
    org_id: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        """Whether the key may no longer be used."""
        return self.revoked_at is not None


@dataclass(slots=True)
class IngestOutcome:
    """What one batch changed: `stored` were new (or completed a `running` one)."""

    stored: list[ExecutionEvent] = field(default_factory=list)
    duplicates: int = 0


@runtime_checkable
class TelemetryStore(Protocol):
    """Jobs, executions and metrics, always scoped by tenant."""

    async def open(self) -> None:
        """Connect and create what is missing."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def ping(self) -> bool:
        """Whether the store answers."""

    async def upsert_jobs(self, tenant: str, jobs: Sequence[JobDefinition]) -> int:
        """Create or replace job definitions; returns how many were written."""

    async def get_job(self, tenant: str, job_id: str) -> JobDefinition | None:
        """One job of the tenant."""

    async def list_jobs(self, tenant: str) -> list[JobDefinition]:
        """Every job of the tenant, by id."""

    async def ingest_executions(
        self,
        tenant: str,
        events: Sequence[ExecutionEvent],
        payloads: Sequence[str] | None = None,
    ) -> IngestOutcome:
        """Store a batch in one round trip, idempotently by `exec_id`.

        `payloads`, if given, are the events already encoded (see `encode_received`).

        An unknown `exec_id` is stored; a final event for a stored `running` one replaces it;
        anything else is a duplicate and changes nothing. Metrics count final events once.
        """

    async def get_execution(self, tenant: str, exec_id: str) -> ExecutionEvent | None:
        """One execution of the tenant."""

    async def list_executions(
        self, tenant: str, job_id: str, limit: int = 100
    ) -> list[ExecutionEvent]:
        """The latest executions of a job, newest first."""

    async def metrics(
        self,
        tenant: str,
        job_id: str | None,
        resolution: Resolution,
        start: datetime,
        end: datetime,
    ) -> list[MetricsBucket]:
        """Buckets of a job (or, with `job_id=None`, of the tenant) whose start is in range."""

    async def query_executions(self, tenant: str, query: ExecutionQuery) -> ExecutionPage:
        """One page of executions matching `query`, newest first (see `_queries`)."""

    async def last_runs(self, tenant: str) -> dict[str, LastRun]:
        """The latest execution of every job that has one, by job id."""

    async def window_stats(
        self, tenant: str, scopes: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, MetricsBucket]:
        """Metrics of each scope (a job id, or `TENANT_SCOPE`) merged over [start, end].

        Read from the hour and day buckets that `cover` the range; scopes without runs in it
        are absent from the result.
        """

    async def version_stats(self, tenant: str, job_id: str) -> list[VersionStats]:
        """Every version of a job seen in a final execution, oldest first."""

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete what is older than the retention; returns how many executions went."""


@runtime_checkable
class AccountStore(Protocol):
    """Users and API keys."""

    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def ping(self) -> bool:
        """Whether the store answers."""

    async def create_user(self, email: str, name: str) -> User:
        """A new account."""

    async def get_user(self, user_id: str) -> User | None:
        """One account."""

    async def list_users(self) -> list[User]:
        """Every account, oldest first."""

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a key (its hash); the prefix must be unique."""

    async def find_api_key(self, prefix: str) -> ApiKeyRecord | None:
        """The key with this prefix, revoked or not."""

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys of one user, or of everyone; oldest first."""

    async def revoke_api_key(self, key_id_or_prefix: str, when: datetime) -> bool:
        """Revoke a key by id or prefix; False if there is no such active key."""

    async def touch_api_key(self, key_id: str, when: datetime) -> None:
        """Record the last use of a key."""


@dataclass(frozen=True, slots=True)
class BrokerEntry:
    """One published batch as a stream delivers it.

    `id` orders entries of a tenant. `reset` marks a gap: the entries after the requested one
    are no longer in the replay buffer, so the listener must reload what it shows.
    """

    id: str
    items: tuple[ExecutionIngested, ...] = ()
    reset: bool = False


@runtime_checkable
class EventBroker(Protocol):
    """Carries `execution:ingested` to the listeners of one tenant, and only to them.

    Besides live delivery, a broker keeps a short replay buffer per tenant so that a listener
    that reconnects with the id of the last entry it saw (`stream(after=...)`) misses nothing,
    or is told explicitly that it may have (`BrokerEntry.reset`).
    """

    async def publish(self, tenant: str, payload: bytes) -> None:
        """Deliver one batch to the tenant's current subscribers and keep it for replay; best
        effort, never raises for them. `payload` is the batch's JSON array of
        `ExecutionIngested` summaries (`encode_ingested`): a broker that sends it on does so
        untouched."""

    def subscribe(
        self, tenant: str
    ) -> AbstractAsyncContextManager[AsyncIterator[ExecutionIngested]]:
        """Listen to one tenant from now on, until the context exits."""

    def stream(
        self, tenant: str, after: str | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[BrokerEntry]]:
        """Entries of one tenant: first those buffered from `after` on (inclusive), then live.

        With `after=None`, only live entries. If `after` is older than the buffer, the first
        entry yielded has `reset=True`.
        """


class ClaimState(StrEnum):
    """What `TriggerStore.claim_trigger` found."""

    CLAIMED = "claimed"
    """The caller now owns the trigger and must deliver (then settle) it."""
    PENDING = "pending"
    """Another scheduler owns it and has not settled it yet; retry when the claim expires."""
    SETTLED = "settled"
    """Already delivered or recorded as missed: nothing to do."""


@dataclass(frozen=True, slots=True)
class TriggerClaim:
    """The answer of `claim_trigger`; `expires_in` (seconds) is set for `PENDING`."""

    state: ClaimState
    expires_in: float = 0.0


@dataclass(frozen=True, slots=True)
class OnceArming:
    """When the scheduler first saw a one-time job's definition, and whether it has fired."""

    armed_at: datetime
    fired_at: datetime | None = None


@runtime_checkable
class TriggerStore(Protocol):
    """The server scheduler's bookkeeping, shared by every server process.

    Claims make a due time trigger once across processes and leader changes (its trigger id
    is deterministic); armings remember one-time jobs, keyed by a hash of their definition.
    """

    async def claim_trigger(
        self, tenant: str, trigger_id: str, *, owner: str, pending_seconds: float
    ) -> TriggerClaim:
        """Take the trigger for `pending_seconds` unless someone holds or settled it."""

    async def settle_trigger(
        self, tenant: str, trigger_id: str, outcome: str, *, keep_seconds: float
    ) -> None:
        """Mark the trigger handled (`outcome`: delivered, missed...) for `keep_seconds`."""

    async def arm_once(self, tenant: str, job_id: str, arming: str, now: datetime) -> OnceArming:
        """The arming of a one-time job's definition `arming`, created at `now` if new."""

    async def mark_fired(self, tenant: str, job_id: str, arming: str, when: datetime) -> None:
        """Record that the one-time job's definition `arming` has fired."""

    async def mark_server_triggered(self, tenant: str, job_id: str) -> None:
        """Remember that a runner joined the job's room: the server schedules it from now on."""

    async def server_triggered_jobs(self, tenant: str) -> set[str]:
        """Ids of the tenant's jobs that a runner has ever joined."""
