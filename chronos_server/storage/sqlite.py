"""The embedded store: everything in one SQLite file, in WAL mode.

All statements run on one connection in one worker thread, so the event loop never blocks on
disk and writes are naturally serialised: two concurrent copies of the same batch are decided
one after the other inside `BEGIN IMMEDIATE` transactions and the second finds only duplicates.
`synchronous=FULL` makes an acknowledged batch survive a power cut, at the price of one fsync
per batch (not per event).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from chronos_core._models import ExecutionEvent, JobDefinition
from chronos_server.errors import Conflict, StoreUnavailable
from chronos_server.storage._codec import decode_event, decode_job, encode_event, encode_job
from chronos_server.storage._metrics import (
    METRICS_TTL_SECONDS,
    TENANT_SCOPE,
    MetricsAccumulator,
    MetricsBucket,
    Resolution,
)
from chronos_server.storage._protocols import ApiKeyRecord, IngestOutcome, User
from chronos_server.storage._sqlite_reads import SQLiteReads
from chronos_server.storage._sqlite_triggers import TRIGGER_SCHEMA, SQLiteTriggers

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    org_id TEXT,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    key_hash BLOB NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS executions (
    tenant TEXT NOT NULL,
    exec_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    final INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant, exec_id)
);
DROP INDEX IF EXISTS executions_by_job;
CREATE INDEX IF NOT EXISTS executions_by_job_time
    ON executions (tenant, job_id, started_ms, exec_id);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (tenant, started_ms, exec_id);
CREATE INDEX IF NOT EXISTS executions_by_status
    ON executions (tenant, json_extract(data, '$.status'), started_ms, exec_id);
CREATE INDEX IF NOT EXISTS executions_by_age ON executions (started_ms);
CREATE TABLE IF NOT EXISTS last_runs (
    tenant TEXT NOT NULL,
    job_id TEXT NOT NULL,
    exec_id TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (tenant, job_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    tenant TEXT NOT NULL,
    job_id TEXT NOT NULL,
    version TEXT NOT NULL,
    field TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (tenant, job_id, version, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics (
    tenant TEXT NOT NULL,
    job_id TEXT NOT NULL,
    resolution TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    field TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (tenant, job_id, resolution, bucket, field)
) WITHOUT ROWID;
"""

_UPSERT_METRIC = """
INSERT INTO metrics (tenant, job_id, resolution, bucket, field, value) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, job_id, resolution, bucket, field) DO UPDATE SET value = CASE excluded.field
    WHEN 'dmin' THEN min(value, excluded.value)
    WHEN 'dmax' THEN max(value, excluded.value)
    ELSE value + excluded.value END
"""

_UPSERT_VERSION = """
INSERT INTO versions (tenant, job_id, version, field, value) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (tenant, job_id, version, field) DO UPDATE SET value = CASE excluded.field
    WHEN 'dmin' THEN min(value, excluded.value)
    WHEN 'first' THEN min(value, excluded.value)
    WHEN 'dmax' THEN max(value, excluded.value)
    WHEN 'last' THEN max(value, excluded.value)
    ELSE value + excluded.value END
"""

_UPSERT_LAST_RUN = """
INSERT INTO last_runs (tenant, job_id, exec_id, started_ms, status) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (tenant, job_id) DO UPDATE SET
    exec_id = excluded.exec_id, started_ms = excluded.started_ms, status = excluded.status
WHERE (excluded.started_ms, excluded.exec_id) >= (last_runs.started_ms, last_runs.exec_id)
"""

_UPSERT_EXECUTION = """
INSERT INTO executions (tenant, exec_id, job_id, final, started_ms, data) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, exec_id) DO UPDATE SET
    job_id = excluded.job_id, final = excluded.final,
    started_ms = excluded.started_ms, data = excluded.data
"""

_SQL_VARIABLES = 500


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # The connection is in autocommit mode; a batch is one explicit write transaction.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _key_from_row(row: sqlite3.Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        user_id=row["user_id"],
        org_id=row["org_id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=bytes(row["key_hash"]),
        created_at=datetime.fromtimestamp(row["created_at"], tz=UTC),
        last_used_at=_ts(row["last_used_at"]),
        revoked_at=_ts(row["revoked_at"]),
    )


def _user_from_row(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        created_at=datetime.fromtimestamp(row["created_at"], tz=UTC),
    )


class SQLiteStore(SQLiteReads, SQLiteTriggers):
    """`TelemetryStore`, `AccountStore` and `TriggerStore` over one SQLite file."""

    def __init__(self, path: Path | str, *, retention_seconds: float = 30 * 86_400) -> None:
        self.path = Path(path)
        self.retention_seconds = retention_seconds
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # -- plumbing ------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        executor, conn = self._executor, self._conn
        if executor is None or conn is None:
            raise StoreUnavailable("the SQLite store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, conn)
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"already exists: {exc}") from exc
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite error: {exc}", retry_after=1.0) from exc

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_SCHEMA)
        conn.executescript(TRIGGER_SCHEMA)
        return conn

    async def open(self) -> None:
        """Open (creating if needed) the database file."""
        if self._conn is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chronos-sqlite")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._connect
            )
        except (sqlite3.Error, OSError) as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection and its thread."""
        executor, conn = self._executor, self._conn
        self._executor, self._conn = None, None
        if executor is None or conn is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def ping(self) -> bool:
        """Whether a trivial query answers."""
        try:
            await self._run(lambda c: c.execute("SELECT 1").fetchone())
        except StoreUnavailable:
            return False
        return True

    # -- jobs ----------------------------------------------------------------------------

    async def upsert_jobs(self, tenant: str, jobs: Sequence[JobDefinition]) -> int:
        """Create or replace job definitions in one transaction."""
        now = time.time()
        rows = [(tenant, job.id, encode_job(job), now) for job in jobs]

        def write(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                conn.executemany(
                    "INSERT INTO jobs (tenant, id, data, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data, "
                    "updated_at = excluded.updated_at",
                    rows,
                )
            return len(rows)

        return await self._run(write)

    async def get_job(self, tenant: str, job_id: str) -> JobDefinition | None:
        """One job of the tenant."""
        row = await self._run(
            lambda c: c.execute(
                "SELECT data FROM jobs WHERE tenant = ? AND id = ?", (tenant, job_id)
            ).fetchone()
        )
        return None if row is None else decode_job(row["data"])

    async def list_jobs(self, tenant: str) -> list[JobDefinition]:
        """Every job of the tenant, by id."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT data FROM jobs WHERE tenant = ? ORDER BY id", (tenant,)
            ).fetchall()
        )
        return [decode_job(row["data"]) for row in rows]

    # -- executions ----------------------------------------------------------------------

    async def ingest_executions(
        self,
        tenant: str,
        events: Sequence[ExecutionEvent],
        payloads: Sequence[str] | None = None,
    ) -> IngestOutcome:
        """Decide new/duplicate and write executions and metrics in one transaction."""
        encoded = payloads if payloads is not None else [encode_event(e) for e in events]

        def write(conn: sqlite3.Connection) -> IngestOutcome:
            ids = list({event.exec_id for event in events})
            with _transaction(conn):
                known: dict[str, bool] = {}
                for i in range(0, len(ids), _SQL_VARIABLES):
                    chunk = ids[i : i + _SQL_VARIABLES]
                    marks = ",".join("?" * len(chunk))
                    for row in conn.execute(
                        "SELECT exec_id, final FROM executions "
                        f"WHERE tenant = ? AND exec_id IN ({marks})",
                        (tenant, *chunk),
                    ):
                        known[row[0]] = bool(row[1])
                outcome = IngestOutcome()
                rows: list[tuple[Any, ...]] = []
                metrics = MetricsAccumulator()
                latest: dict[str, tuple[int, str, str]] = {}
                for event, data in zip(events, encoded, strict=True):
                    final = event.status.is_final
                    previous = known.get(event.exec_id)
                    if previous is None or (final and previous is False):
                        known[event.exec_id] = final
                        outcome.stored.append(event)
                        started_ms = int(event.started_at.timestamp() * 1000)
                        rows.append((tenant, event.exec_id, event.job_id, final, started_ms, data))
                        position = (started_ms, event.exec_id, event.status.value)
                        if position >= latest.get(event.job_id, position):
                            latest[event.job_id] = position
                        if final:
                            metrics.add(event)
                    else:
                        outcome.duplicates += 1
                conn.executemany(_UPSERT_EXECUTION, rows)
                conn.executemany(
                    _UPSERT_METRIC,
                    [
                        (tenant, scope, resolution.value, start, name, value)
                        for (scope, resolution, start), fields in metrics.items()
                        for name, value in fields.items()
                    ],
                )
                conn.executemany(
                    _UPSERT_VERSION,
                    [
                        (tenant, job_id, version, name, value)
                        for (job_id, version), fields in metrics.versions.items()
                        for name, value in fields.items()
                    ],
                )
                conn.executemany(
                    _UPSERT_LAST_RUN,
                    [(tenant, job, e, ms, status) for job, (ms, e, status) in latest.items()],
                )
            return outcome

        return await self._run(write)

    async def get_execution(self, tenant: str, exec_id: str) -> ExecutionEvent | None:
        """One execution of the tenant."""
        row = await self._run(
            lambda c: c.execute(
                "SELECT data FROM executions WHERE tenant = ? AND exec_id = ?", (tenant, exec_id)
            ).fetchone()
        )
        return None if row is None else decode_event(row["data"])

    async def list_executions(
        self, tenant: str, job_id: str, limit: int = 100
    ) -> list[ExecutionEvent]:
        """The latest executions of a job, newest first."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT data FROM executions WHERE tenant = ? AND job_id = ? "
                "ORDER BY started_ms DESC LIMIT ?",
                (tenant, job_id, limit),
            ).fetchall()
        )
        return [decode_event(row["data"]) for row in rows]

    async def metrics(
        self,
        tenant: str,
        job_id: str | None,
        resolution: Resolution,
        start: datetime,
        end: datetime,
    ) -> list[MetricsBucket]:
        """Buckets whose start is in [start, end]."""
        scope = TENANT_SCOPE if job_id is None else job_id
        rows = await self._run(
            lambda c: c.execute(
                "SELECT bucket, field, value FROM metrics WHERE tenant = ? AND job_id = ? "
                "AND resolution = ? AND bucket BETWEEN ? AND ? ORDER BY bucket",
                (tenant, scope, resolution.value, int(start.timestamp()), int(end.timestamp())),
            ).fetchall()
        )
        grouped: dict[int, dict[str, float]] = {}
        for row in rows:
            grouped.setdefault(row["bucket"], {})[row["field"]] = row["value"]
        return [MetricsBucket.from_fields(b, resolution, f) for b, f in grouped.items()]

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete executions past the retention and metrics buckets past theirs."""
        current = (now or datetime.now(UTC)).timestamp()
        cutoff_ms = int((current - self.retention_seconds) * 1000)

        def purge(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                deleted = conn.execute(
                    "DELETE FROM executions WHERE started_ms < ?", (cutoff_ms,)
                ).rowcount
                for resolution, ttl in METRICS_TTL_SECONDS.items():
                    conn.execute(
                        "DELETE FROM metrics WHERE resolution = ? AND bucket < ?",
                        (resolution.value, int(current - ttl)),
                    )
                conn.execute(
                    "DELETE FROM versions WHERE (tenant, job_id, version) IN (SELECT tenant, "
                    "job_id, version FROM versions WHERE field = 'last' AND value < ?)",
                    (cutoff_ms,),
                )
            return deleted

        return await self._run(purge)

    # -- accounts ------------------------------------------------------------------------

    async def create_user(self, email: str, name: str) -> User:
        """A new account with a fresh id."""
        user = User(id=uuid.uuid4().hex[:16], email=email, name=name, created_at=datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO users (id, email, name, created_at) VALUES (?, ?, ?, ?)",
                    (user.id, user.email, user.name, user.created_at.timestamp()),
                )

        await self._run(write)
        return user

    async def get_user(self, user_id: str) -> User | None:
        """One account."""
        row = await self._run(
            lambda c: c.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        )
        return None if row is None else _user_from_row(row)

    async def list_users(self) -> list[User]:
        """Every account, oldest first."""
        rows = await self._run(
            lambda c: c.execute("SELECT * FROM users ORDER BY created_at, id").fetchall()
        )
        return [_user_from_row(row) for row in rows]

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a key's hash and metadata."""

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, "
                    "created_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.user_id,
                        record.org_id,
                        record.name,
                        record.prefix,
                        record.key_hash,
                        record.created_at.timestamp(),
                        None,
                        None,
                    ),
                )

        await self._run(write)

    async def find_api_key(self, prefix: str) -> ApiKeyRecord | None:
        """The key with this prefix."""
        row = await self._run(
            lambda c: c.execute("SELECT * FROM api_keys WHERE prefix = ?", (prefix,)).fetchone()
        )
        return None if row is None else _key_from_row(row)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys of one user, or of everyone."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM api_keys WHERE ? IS NULL OR user_id = ? ORDER BY created_at, id",
                (user_id, user_id),
            ).fetchall()
        )
        return [_key_from_row(row) for row in rows]

    async def revoke_api_key(self, key_id_or_prefix: str, when: datetime) -> bool:
        """Revoke an active key by id or prefix."""

        def write(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                cursor = conn.execute(
                    "UPDATE api_keys SET revoked_at = ? "
                    "WHERE (id = ? OR prefix = ?) AND revoked_at IS NULL",
                    (when.timestamp(), key_id_or_prefix, key_id_or_prefix),
                )
            return cursor.rowcount > 0

        return await self._run(write)

    async def touch_api_key(self, key_id: str, when: datetime) -> None:
        """Record the last use of a key."""

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (when.timestamp(), key_id)
                )

        await self._run(write)
