"""The read queries of the embedded store (listing, last runs, windows, versions).

Kept apart from `sqlite.py`, which owns the connection, the schema and the writes. Every query
is one indexed statement: executions pages walk `executions_by_time`, `executions_by_job_time`
or `executions_by_status` (an index on the status inside the stored JSON) backwards from the
cursor; windows read the hour and day rows of `metrics` by primary key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from chronos_core._models import ExecutionStatus
from chronos_server.storage._codec import decode_event
from chronos_server.storage._metrics import MetricsBucket, Resolution, cover, merge_fields
from chronos_server.storage._queries import (
    Cursor,
    ExecutionPage,
    ExecutionQuery,
    LastRun,
    VersionStats,
)

__all__ = ["SQLiteReads"]

T = TypeVar("T")

_STATUS = "json_extract(data, '$.status')"


def _from_ms(value: float) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class SQLiteReads:
    """Read methods of `SQLiteStore`; it provides `_run`."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    async def query_executions(self, tenant: str, query: ExecutionQuery) -> ExecutionPage:
        """One page by keyset on `(started_ms, exec_id)`, newest first."""
        where = ["tenant = ?"]
        params: list[Any] = [tenant]
        if query.job_id is not None:
            where.append("job_id = ?")
            params.append(query.job_id)
        if query.statuses:
            statuses = sorted(s.value for s in query.statuses)
            where.append(f"{_STATUS} IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if query.since_ms is not None:
            where.append("started_ms >= ?")
            params.append(query.since_ms)
        if query.until_ms is not None:
            where.append("started_ms < ?")
            params.append(query.until_ms)
        if query.job_version is not None:
            where.append("json_extract(data, '$.jobVersion') = ?")
            params.append(query.job_version)
        if query.source is not None:
            where.append("json_extract(data, '$.source') = ?")
            params.append(query.source.value)
        if query.cursor is not None:
            where.append("(started_ms, exec_id) < (?, ?)")
            params.extend((query.cursor.started_ms, query.cursor.exec_id))
        sql = (
            f"SELECT data FROM executions WHERE {' AND '.join(where)} "
            "ORDER BY started_ms DESC, exec_id DESC LIMIT ?"
        )
        params.append(query.limit + 1)
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        items = [decode_event(row[0]) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return ExecutionPage(items=items, next_cursor=Cursor.of(items[-1]) if more else None)

    async def last_runs(self, tenant: str) -> dict[str, LastRun]:
        """From the `last_runs` table, kept up to date by ingestion."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT job_id, exec_id, started_ms, status FROM last_runs WHERE tenant = ?",
                (tenant,),
            ).fetchall()
        )
        return {
            row[0]: LastRun(
                job_id=row[0],
                exec_id=row[1],
                status=ExecutionStatus(row[3]),
                started_at=_from_ms(row[2]),
            )
            for row in rows
        }

    async def window_stats(
        self, tenant: str, scopes: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, MetricsBucket]:
        """One aggregate per covered range of buckets, merged in Python."""
        if not scopes:
            return {}
        ranges = _ranges(cover(start, end))
        scope_list = list(scopes)

        def read(conn: sqlite3.Connection) -> dict[str, dict[str, float]]:
            merged: dict[str, dict[str, float]] = {}
            for i in range(0, len(scope_list), 400):
                chunk = scope_list[i : i + 400]
                marks = ",".join("?" * len(chunk))
                for resolution, low, high in ranges:
                    rows = conn.execute(
                        "SELECT job_id, field, CASE field WHEN 'dmin' THEN min(value) "
                        "WHEN 'dmax' THEN max(value) ELSE sum(value) END FROM metrics "
                        f"WHERE tenant = ? AND job_id IN ({marks}) AND resolution = ? "
                        "AND bucket BETWEEN ? AND ? GROUP BY job_id, field",
                        (tenant, *chunk, resolution.value, low, high),
                    )
                    by_scope: dict[str, dict[str, float]] = {}
                    for scope, name, value in rows:
                        by_scope.setdefault(scope, {})[name] = value
                    for scope, fields in by_scope.items():
                        merge_fields(merged.setdefault(scope, {}), fields)
            return merged

        merged = await self._run(read)
        first = int(start.timestamp())
        return {
            scope: MetricsBucket.from_fields(first, Resolution.HOUR, fields)
            for scope, fields in merged.items()
        }

    async def version_stats(self, tenant: str, job_id: str) -> list[VersionStats]:
        """From the `versions` table."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT version, field, value FROM versions WHERE tenant = ? AND job_id = ?",
                (tenant, job_id),
            ).fetchall()
        )
        grouped: dict[str, dict[str, float]] = {}
        for version, name, value in rows:
            grouped.setdefault(version, {})[name] = value
        return version_records(grouped)


def version_records(grouped: dict[str, dict[str, float]]) -> list[VersionStats]:
    """`VersionStats` from field maps by version, oldest first (shared with Redis)."""
    records = [
        VersionStats(
            version=version,
            first_seen=_from_ms(fields.get("first", 0)),
            last_seen=_from_ms(fields.get("last", 0)),
            metrics=MetricsBucket.from_fields(
                int(fields.get("first", 0) // 1000), Resolution.DAY, fields
            ),
        )
        for version, fields in grouped.items()
    ]
    records.sort(key=lambda r: (r.first_seen, r.version))
    return records


def _ranges(buckets: list[tuple[Resolution, int]]) -> list[tuple[Resolution, int, int]]:
    """Consecutive buckets of one resolution as (resolution, first start, last start)."""
    ranges: list[tuple[Resolution, int, int]] = []
    for resolution, at in buckets:
        if ranges and ranges[-1][0] is resolution:
            ranges[-1] = (resolution, ranges[-1][1], at)
        else:
            ranges.append((resolution, at, at))
    return ranges
