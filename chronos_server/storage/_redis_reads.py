"""The read paths of the Redis store, designed to stay fast with millions of executions.

Indexes kept by `_ingest.lua`, for prefix `P` and tenant `T`:

    P{t:T}:all                    zset   every execId by startedAt (ms)
    P{t:T}:s:<status>             zset   execIds of one status by startedAt
    P{t:T}:j:<jobId>              zset   execIds of one job by startedAt
    P{t:T}:last                   hash   job id -> "startedMs|status|execId" of its latest run
    P{t:T}:vs:<jobId>             set    versions of a job seen in final runs
    P{t:T}:mv:<jobId>:<version>   hash   metrics of one version (+ `first`/`last` seen, ms)
    P{t:T}:r:<jobId>, P{t:T}:rt   hash   rolling summary of the last 25 hour buckets of a job /
                                         the tenant: counts, sums, extremes, `from` (hour)
    P{t:T}:rh:<jobId>, P{t:T}:rth string its histogram, a u32 counter per index (BITFIELD)

A page walks one zset from the cursor by rank (`ZCOUNT` locates the cursor, `ZRANGE ... REV`
reads on) and fetches the executions with one `MGET`; filters the index does not cover are
applied after reading, within `ExecutionQuery.scan_budget`. Windows (job summaries,
analytics) are computed inside Redis (`_window.lua`) and come back as one JSON document, so
nothing proportional to the number of executions crosses the network. A 24-hour window
ending in the current hour (the default of the jobs list and the analytics summary) reads one
rolling summary per scope, which `_ingest.lua` keeps up to date and `_window.lua` moves hour
by hour; any other window merges the hour and day buckets that `cover` it.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chronos_core._models import ExecutionEvent, ExecutionStatus
from chronos_server.errors import StoreUnavailable
from chronos_server.storage._codec import decode_event
from chronos_server.storage._metrics import (
    ROLLING_HOURS,
    ROLLING_TTL_SECONDS,
    MetricsBucket,
    Resolution,
    bucket_start,
    cover,
)
from chronos_server.storage._queries import (
    Cursor,
    ExecutionPage,
    ExecutionQuery,
    LastRun,
    VersionStats,
)
from chronos_server.storage._sqlite_reads import version_records

__all__ = ["HASH_LUA", "WINDOW_LUA", "RedisReads"]

T = TypeVar("T")

HASH_LUA = "return cjson.encode(redis.call('HGETALL', KEYS[1]))"
"""A hash as one JSON array of fields and values (`{}` when empty): parsing one bulk string is
much cheaper for redis-py (in pure Python) than a reply of two bulk strings per field."""
WINDOW_LUA = importlib.resources.files("chronos_server.storage").joinpath("_window.lua").read_text()
_MIN_CHUNK = 100


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except RedisError as exc:
        raise StoreUnavailable(f"Redis: {exc}", retry_after=1.0) from exc


class RedisReads:
    """Read methods of `RedisTelemetryStore`; it provides `client`, `_prefix`, the scripts
    `_window` and `_hash`, and `_clock`."""

    _window: Any
    _hash: Any
    _clock: Callable[[], float]

    @property
    def client(self) -> aioredis.Redis:  # pragma: no cover - provided by the store
        raise NotImplementedError

    def _prefix(self, tenant: str) -> str:  # pragma: no cover - provided by the store
        raise NotImplementedError

    def _index(self, prefix: str, query: ExecutionQuery) -> tuple[str, bool]:
        """The zset to walk, and whether it already applies the status filter."""
        if query.job_id is not None:
            return prefix + "j:" + query.job_id, False
        if len(query.statuses) == 1:
            (status,) = query.statuses
            return prefix + "s:" + ExecutionStatus(status).value, True
        return prefix + "all", False

    async def _start_rank(self, key: str, query: ExecutionQuery) -> int:
        """Rank (newest first) of the first index entry the page may return."""
        client = self.client
        if query.cursor is not None:
            ms, exec_id = query.cursor.started_ms, query.cursor.exec_id
            async with client.pipeline(transaction=False) as pipe:
                pipe.zcount(key, f"({ms}", "+inf")
                pipe.zrangebyscore(key, ms, ms)
                newer, ties = await _guard(pipe.execute())
            return int(newer) + sum(1 for member in ties if member.decode() >= exec_id)
        if query.until_ms is not None:
            return int(await _guard(client.zcount(key, query.until_ms, "+inf")))
        return 0

    async def query_executions(self, tenant: str, query: ExecutionQuery) -> ExecutionPage:
        """Walk the best index from the cursor, read in chunks, filter, stop at the limit."""
        prefix = self._prefix(tenant)
        key, status_done = self._index(prefix, query)
        filters = ExecutionQuery(
            statuses=() if status_done else query.statuses,
            job_version=query.job_version,
            source=query.source,
        )
        rank = await self._start_rank(key, query)
        since = query.since_ms
        position = query.cursor
        head = (prefix + "x:").encode()
        items: list[ExecutionEvent] = []
        scanned = 0
        chunk = max(_MIN_CHUNK, query.limit + 1)
        while len(items) < query.limit and scanned < query.scan_budget:
            found: Any = await _guard(
                self.client.zrange(key, rank, rank + chunk - 1, desc=True, withscores=True)
            )
            entries = cast(list[tuple[bytes, float]], found)
            if not entries:
                return ExecutionPage(items=items)
            rank += len(entries)
            candidates: list[tuple[Cursor, bytes]] = []
            ended = False
            for member, score in entries:
                at = Cursor(int(score), member.decode())
                if since is not None and at.started_ms < since:
                    ended = True
                    break
                # Entries inserted above us while we read shift ranks down: skip what we passed.
                if position is not None and at >= position:
                    continue
                candidates.append((at, member))
            values: list[Any] = []
            if candidates:
                values = await _guard(self.client.mget([head + m for _, m in candidates]))
            for (at, _), value in zip(candidates, values, strict=True):
                scanned += 1
                position = at
                if value is None:
                    continue
                event = decode_event(value[1:])
                if filters.matches(event):
                    items.append(event)
                    if len(items) == query.limit:
                        break
            if ended and len(items) < query.limit:
                return ExecutionPage(items=items)
            chunk = min(chunk * 2, 1_000)
        if len(items) == query.limit:
            return ExecutionPage(items=items, next_cursor=Cursor.of(items[-1]))
        return ExecutionPage(items=items, next_cursor=position)

    async def last_runs(self, tenant: str) -> dict[str, LastRun]:
        """The tenant's `last` hash, read as one JSON string (`HASH_LUA`)."""
        answer = await _guard(self._hash(keys=[self._prefix(tenant) + "last"]))
        flat = msgspec.json.decode(answer) or ()  # an empty hash comes back as `{}`
        runs: dict[str, LastRun] = {}
        for job_id, value in zip(flat[::2], flat[1::2], strict=True):
            started, status, exec_id = value.split("|", 2)
            runs[job_id] = LastRun(
                job_id=job_id,
                exec_id=exec_id,
                status=ExecutionStatus(status),
                started_at=datetime.fromtimestamp(int(started) / 1000, tz=UTC),
            )
        return runs

    async def window_stats(
        self, tenant: str, scopes: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, MetricsBucket]:
        """One Lua call: the rolling summaries for a 24-hour window ending in the current hour,
        else every bucket of every scope merged inside Redis."""
        if not scopes:
            return {}
        prefix = self._prefix(tenant)
        hour = Resolution.HOUR.seconds
        first_hour = bucket_start(start.timestamp(), Resolution.HOUR)
        last_hour = bucket_start(end.timestamp(), Resolution.HOUR)
        args: list[Any]
        if last_hour - first_hour == (ROLLING_HOURS - 1) * hour and last_hour == bucket_start(
            self._clock(), Resolution.HOUR
        ):
            args = [prefix, "r", first_hour, ROLLING_HOURS, ROLLING_TTL_SECONDS, *scopes]
        else:
            buckets = [f"{resolution.value}:{at}" for resolution, at in cover(start, end)]
            args = [prefix, "b", len(buckets), *buckets, *scopes]
        answer = await _guard(self._window(keys=[prefix + "jobs"], args=args))
        first = int(start.timestamp())
        if args[1] == "b":
            return {
                scope: MetricsBucket.from_summary(first, data)
                for scope, data in zip(scopes, msgspec.json.decode(answer), strict=True)
                if data
            }
        found = cast(list[bytes], answer)
        return {
            scope: MetricsBucket.from_summary(first, data, dense)
            for scope, data, dense in zip(
                scopes, msgspec.json.decode(found[0]), found[1:], strict=True
            )
            if data
        }

    async def version_stats(self, tenant: str, job_id: str) -> list[VersionStats]:
        """SMEMBERS of the job's versions, then one HGETALL each, pipelined."""
        prefix = self._prefix(tenant)
        found: Any = await _guard(self.client.smembers(prefix + "vs:" + job_id))
        versions = sorted(v.decode() for v in cast(set[bytes], found))
        if not versions:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for version in versions:
                pipe.hgetall(f"{prefix}mv:{job_id}:{version}")
            results = await _guard(pipe.execute())
        grouped = {
            version: {k.decode(): float(v) for k, v in fields.items()}
            for version, fields in zip(versions, results, strict=True)
            if fields
        }
        return version_records(grouped)
