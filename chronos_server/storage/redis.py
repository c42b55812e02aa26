"""The production telemetry store: Redis (>= 6.2, or Valkey), core data structures only.

Layout, for prefix `P` (default `chronos:`) and tenant `T`; every key of a tenant carries the
hash tag `{t:T}`, so one tenant lives in one slot of a Redis Cluster and a batch is one Lua call:

    P{t:T}:jobs                        hash   job id -> job JSON
    P{t:T}:x:<execId>                  string "R" or "F" (running / final) + execution JSON,
                                              expires after the retention
    P{t:T}:j:<jobId>                   zset   execId scored by startedAt (ms), trimmed by age by
                                              `purge_expired` (no TTL)
    P{t:T}:mj:<res>:<bucket>:<jobId>   hash   metrics of a job (fields in `_metrics`)
    P{t:T}:mt:<res>:<bucket>           hash   metrics of the tenant
    P{t:T}:r:<jobId>, P{t:T}:rt        hash   rolling 24-hour summary of a job / the tenant,
    P{t:T}:rh:<jobId>, P{t:T}:rth      string and its histogram (BITFIELD u32 counters)
    P{t:T}:all, P{t:T}:s:<status>      zset   execIds of all runs / of one status, by startedAt
    P{t:T}:last                        hash   job id -> its latest run
    P{t:T}:vs:<jobId>, mv:<jobId>:<v>  set / hash  versions seen and their metrics
    P{t:T}:execution:ingested          pub/sub channel (see `RedisBroker`)
    P{t:T}:events                      stream replay buffer of the channel
    P{t:T}:trig:*, once:*, served      the scheduler's bookkeeping (see `_redis_triggers`)

(the read side of these indexes is described in `_redis_reads`)

The Lua script declares the jobs hash as its key and derives the others from it; they hash to
the same slot, which is what Redis Cluster requires.
"""

from __future__ import annotations

import importlib.resources
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chronos_core._models import ExecutionEvent, ExecutionIngested, ExecutionStatus, JobDefinition
from chronos_server.errors import StoreUnavailable
from chronos_server.storage._codec import (
    decode_event,
    decode_ingested,
    decode_job,
    encode_event,
    encode_job,
)
from chronos_server.storage._metrics import (
    METRICS_TTL_SECONDS,
    ROLLING_HOURS,
    ROLLING_TTL_SECONDS,
    MetricsBucket,
    Resolution,
    bucket_start,
    histogram_index,
)
from chronos_server.storage._protocols import BrokerEntry, IngestOutcome
from chronos_server.storage._redis_client import open_client
from chronos_server.storage._redis_reads import HASH_LUA, WINDOW_LUA, RedisReads
from chronos_server.storage._redis_triggers import RedisTriggers

__all__ = ["RedisBroker", "RedisTelemetryStore", "tenant_prefix"]

logger = logging.getLogger("chronos_server.redis")

T = TypeVar("T")

_INGEST_LUA = (
    importlib.resources.files("chronos_server.storage").joinpath("_ingest.lua").read_text()
)
_LIST_CHUNK = 500
_DUPLICATE = ord("0")
"""The ingest script's code (one byte per event) for an execution already stored."""


def tenant_prefix(key_prefix: str, tenant: str) -> str:
    """The prefix of every key of `tenant`, hash tag included."""
    return f"{key_prefix}{{t:{tenant}}}:"


def _check_prefix(key_prefix: str) -> str:
    if "{" in key_prefix or "}" in key_prefix:
        raise ValueError("the Redis key prefix may not contain braces (they form hash tags)")
    return key_prefix


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except RedisError as exc:
        raise StoreUnavailable(f"Redis: {exc}", retry_after=1.0) from exc


class RedisTelemetryStore(RedisReads, RedisTriggers):
    """`TelemetryStore` and `TriggerStore` on Redis (reads in `_redis_reads`, scheduler
    bookkeeping in `_redis_triggers`)."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "chronos:",
        retention_seconds: float = 30 * 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.key_prefix = _check_prefix(key_prefix)
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._client: aioredis.Redis | None = None
        self._ingest: Any = None
        self._window: Any = None
        self._hash: Any = None

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool; raises if the store is closed."""
        if self._client is None:
            raise StoreUnavailable("the Redis store is not open")
        return self._client

    def _prefix(self, tenant: str) -> str:
        return tenant_prefix(self.key_prefix, tenant)

    async def open(self) -> None:
        """Connect and check the server answers."""
        if self._client is not None:
            return
        client = open_client(self.url, decode_responses=False)
        try:
            await _guard(client.ping())
        except StoreUnavailable:
            await client.aclose()
            raise
        self._client = client
        self._ingest = client.register_script(_INGEST_LUA)
        self._window = client.register_script(WINDOW_LUA)
        self._hash = client.register_script(HASH_LUA)

    async def close(self) -> None:
        """Close the pool; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(await _guard(self.client.ping()))
        except StoreUnavailable:
            return False

    # -- jobs ----------------------------------------------------------------------------

    async def upsert_jobs(self, tenant: str, jobs: Sequence[JobDefinition]) -> int:
        """One HSET for the whole registration."""
        if not jobs:
            return 0
        mapping: dict[Any, Any] = {job.id: encode_job(job) for job in jobs}
        await _guard(self.client.hset(self._prefix(tenant) + "jobs", mapping=mapping))
        return len(jobs)

    async def get_job(self, tenant: str, job_id: str) -> JobDefinition | None:
        """One job of the tenant."""
        data = await _guard(self.client.hget(self._prefix(tenant) + "jobs", job_id))
        return None if data is None else decode_job(data)

    async def list_jobs(self, tenant: str) -> list[JobDefinition]:
        """Every job of the tenant, by id (the hash read as one JSON string, `HASH_LUA`)."""
        answer = await _guard(self._hash(keys=[self._prefix(tenant) + "jobs"]))
        flat = msgspec.json.decode(answer) or ()  # an empty hash comes back as `{}`
        found = sorted(zip(flat[::2], flat[1::2], strict=True))
        return [decode_job(data) for _, data in found]

    # -- executions ----------------------------------------------------------------------

    async def ingest_executions(
        self,
        tenant: str,
        events: Sequence[ExecutionEvent],
        payloads: Sequence[str] | None = None,
    ) -> IngestOutcome:
        """One EVALSHA per batch (see `_ingest.lua`)."""
        if not events:
            return IngestOutcome()
        keys, args = self.ingest_arguments(tenant, events, payloads)
        codes: bytes = await _guard(self._ingest(keys=keys, args=args))
        outcome = IngestOutcome()
        for event, code in zip(events, codes, strict=True):
            if code != _DUPLICATE:
                outcome.stored.append(event)
            else:
                outcome.duplicates += 1
        return outcome

    def ingest_arguments(
        self,
        tenant: str,
        events: Sequence[ExecutionEvent],
        payloads: Sequence[str] | None = None,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the `_ingest.lua` call for one batch."""
        prefix = self._prefix(tenant)
        args: list[Any] = [
            prefix,
            int(self.retention_seconds * 1000),
            int(self._clock() * 1000),
            METRICS_TTL_SECONDS[Resolution.MINUTE],
            METRICS_TTL_SECONDS[Resolution.HOUR],
            METRICS_TTL_SECONDS[Resolution.DAY],
            ROLLING_HOURS,
            ROLLING_TTL_SECONDS,
        ]
        encoded = payloads if payloads is not None else [encode_event(e) for e in events]
        running = ExecutionStatus.RUNNING
        for event, payload in zip(events, encoded, strict=True):
            duration = event.duration_ms
            status = event.status
            started = int(event.started_at.timestamp() * 1000)
            if duration is None:
                meta = f"{status.value} {started} - 0"
            else:
                meta = f"{status.value} {started} {duration!r} {histogram_index(duration)}"
            args += (
                event.exec_id,
                event.job_id,
                event.job_version or "",
                meta,
                ("R" if status is running else "F") + payload,
            )
        return [prefix + "jobs"], args

    async def get_execution(self, tenant: str, exec_id: str) -> ExecutionEvent | None:
        """One execution of the tenant."""
        data = await _guard(self.client.get(self._prefix(tenant) + "x:" + exec_id))
        return None if data is None else decode_event(data[1:])

    async def list_executions(
        self, tenant: str, job_id: str, limit: int = 100
    ) -> list[ExecutionEvent]:
        """Newest first; entries whose execution expired are skipped."""
        prefix = self._prefix(tenant)
        found: Any = await _guard(self.client.zrevrange(prefix + "j:" + job_id, 0, limit - 1))
        ids = cast(list[bytes], found)
        if not ids:
            return []
        head = (prefix + "x:").encode()
        values = await _guard(self.client.mget([head + exec_id for exec_id in ids]))
        return [decode_event(value[1:]) for value in values if value is not None]

    async def metrics(
        self,
        tenant: str,
        job_id: str | None,
        resolution: Resolution,
        start: datetime,
        end: datetime,
    ) -> list[MetricsBucket]:
        """Reads every bucket of the range in one pipeline."""
        prefix = self._prefix(tenant)
        first = bucket_start(start.timestamp(), resolution)
        if first < start.timestamp():
            first += resolution.seconds
        starts = list(range(first, int(end.timestamp()) + 1, resolution.seconds))
        if job_id is None:
            keys = [f"{prefix}mt:{resolution.value}:{s}" for s in starts]
        else:
            keys = [f"{prefix}mj:{resolution.value}:{s}:{job_id}" for s in starts]
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            results = await _guard(pipe.execute())
        return [
            MetricsBucket.from_fields(
                s, resolution, {k.decode(): float(v) for k, v in fields.items()}
            )
            for s, fields in zip(starts, results, strict=True)
            if fields
        ]

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Trim the execution indexes (every sorted set) of every tenant; executions, metrics
        and versions expire by TTL. Ingestion does not trim the indexes: this does, every
        purge interval.

        Returns the number of index entries removed.
        """
        cutoff_ms = ((now or datetime.now(UTC)).timestamp() - self.retention_seconds) * 1000
        removed = 0
        async for key in self.client.scan_iter(
            match=f"{self.key_prefix}{{t:*}}:*", count=500, _type="zset"
        ):
            removed += await _guard(self.client.zremrangebyscore(key, "-inf", f"({int(cutoff_ms)}"))
        return int(removed)


_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], id .. ' ' .. ARGV[2])
return id
"""

DEFAULT_REPLAY_ENTRIES = 1_000
"""Published batches kept per tenant (approximately: `XADD MAXLEN ~`) for reconnections."""
DEFAULT_REPLAY_SECONDS = 3_600
"""A tenant's replay stream expires after this long without a publication."""


def _stream_id(value: str) -> tuple[int, int] | None:
    ms, _, seq = value.partition("-")
    if not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


def _entry(entry_id: str, payload: str | bytes) -> BrokerEntry:
    return BrokerEntry(id=entry_id, items=decode_ingested(payload))


class RedisBroker:
    """`execution:ingested` over Redis: one pub/sub channel and one replay stream per tenant.

    A publication is one Lua call: `XADD` to the tenant's stream `P{t:T}:events` (trimmed to
    about `replay_entries`), then `PUBLISH` of `"<stream id> <JSON array>"` on its channel, so
    a live message carries the id a reconnecting listener resumes from.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "chronos:",
        replay_entries: int = DEFAULT_REPLAY_ENTRIES,
        replay_seconds: int = DEFAULT_REPLAY_SECONDS,
    ) -> None:
        self.url = url
        self.key_prefix = _check_prefix(key_prefix)
        self.replay_entries = replay_entries
        self.replay_seconds = replay_seconds
        self._client: aioredis.Redis | None = None
        self._publish: Any = None

    def channel(self, tenant: str) -> str:
        """The pub/sub channel of one tenant."""
        return tenant_prefix(self.key_prefix, tenant) + "execution:ingested"

    def stream_key(self, tenant: str) -> str:
        """The replay stream of one tenant."""
        return tenant_prefix(self.key_prefix, tenant) + "events"

    async def open(self) -> None:
        """Create the connection pool (connections are made on use)."""
        if self._client is None:
            self._client = open_client(self.url, decode_responses=False)
            self._publish = self._client.register_script(_PUBLISH_LUA)

    async def close(self) -> None:
        """Close the pool; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _require(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreUnavailable("the Redis broker is not open")
        return self._client

    async def publish(self, tenant: str, payload: bytes) -> None:
        """One Lua call for the batch: into the replay stream, then on the channel."""
        if payload in (b"", b"[]"):
            return
        self._require()
        await _guard(
            self._publish(
                keys=[self.stream_key(tenant)],
                args=[
                    self.replay_entries,
                    payload,
                    self.replay_seconds * 1000,
                    self.channel(tenant),
                ],
            )
        )

    @asynccontextmanager
    async def _live(self, tenant: str) -> AsyncIterator[AsyncIterator[BrokerEntry]]:
        """Subscribe, wait for Redis to confirm, then iterate the channel's entries."""
        pubsub = self._require().pubsub(ignore_subscribe_messages=False)
        channel = self.channel(tenant)
        await _guard(pubsub.subscribe(channel))
        try:
            while True:  # the confirmation comes first; after it nothing published is missed
                message = await _guard(pubsub.get_message(timeout=5.0))
                if message is not None and message.get("type") == "subscribe":
                    break

            async def _iterate() -> AsyncIterator[BrokerEntry]:
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    entry_id, _, payload = message["data"].partition(b" ")
                    yield _entry(entry_id.decode(), payload)

            yield _iterate()
        finally:
            try:
                await pubsub.unsubscribe(channel)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    @asynccontextmanager
    async def subscribe(self, tenant: str) -> AsyncIterator[AsyncIterator[ExecutionIngested]]:
        """Listen to one tenant's channel until the context exits."""
        async with self._live(tenant) as entries:

            async def _iterate() -> AsyncIterator[ExecutionIngested]:
                async for entry in entries:
                    for item in entry.items:
                        yield item

            yield _iterate()

    @asynccontextmanager
    async def stream(
        self, tenant: str, after: str | None = None
    ) -> AsyncIterator[AsyncIterator[BrokerEntry]]:
        """Subscribe first, then replay `XRANGE after +`, then live entries not replayed."""
        async with self._live(tenant) as live:
            backlog: list[BrokerEntry] = []
            wanted = None if after is None else _stream_id(after)
            if after is not None:
                client, key = self._require(), self.stream_key(tenant)
                oldest: Any = await _guard(client.xrange(key, "-", "+", count=1))
                first = _stream_id(oldest[0][0].decode()) if oldest else None
                if wanted is None or first is None or wanted < first:
                    backlog.append(BrokerEntry(id=after, reset=True))
                else:
                    found: Any = await _guard(client.xrange(key, after, "+"))
                    backlog.extend(_entry(i.decode(), fields[b"d"]) for i, fields in found)
            seen = _stream_id(backlog[-1].id) if backlog and not backlog[-1].reset else None

            async def _iterate() -> AsyncIterator[BrokerEntry]:
                for entry in backlog:
                    yield entry
                async for entry in live:
                    position = _stream_id(entry.id)
                    if seen is not None and position is not None and position <= seen:
                        continue
                    yield entry

            yield _iterate()
