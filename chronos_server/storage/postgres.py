"""The production account store: users and API keys in PostgreSQL, through asyncpg.

The schema is versioned by the SQL files of `chronos_server/migrations` (`NNNN_name.sql`),
applied in order at start (and by `chronos db migrate`), each in its own transaction, under an
advisory lock so that several servers starting together apply each file once.
"""

from __future__ import annotations

import importlib.resources
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from chronos_server.errors import Conflict, StoreUnavailable
from chronos_server.storage._protocols import ApiKeyRecord, User

__all__ = ["PostgresAccountStore", "available_migrations", "migrate"]

T = TypeVar("T")

_MIGRATION_LOCK = 0x636872_6F6E6F73  # "chronos"
_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def available_migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration file, in order."""
    folder = importlib.resources.files("chronos_server.migrations")
    files = sorted((entry.name, entry) for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), entry.read_text()) for name, entry in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the pending migrations; returns the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(_MIGRATIONS_TABLE)
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in available_migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"already exists: {exc.detail or exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StoreUnavailable(f"PostgreSQL: {exc}", retry_after=1.0) from exc


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        user_id=row["user_id"],
        org_id=row["org_id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=bytes(row["key_hash"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def _user(row: Any) -> User:
    return User(id=row["id"], email=row["email"], name=row["name"], created_at=row["created_at"])


class PostgresAccountStore:
    """`AccountStore` on PostgreSQL."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.applied_migrations: list[str] = []
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool; raises if the store is closed."""
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        return self._pool

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        if self._pool is not None:
            return
        pool = await _guard(
            asyncpg.create_pool(self.dsn, min_size=self.min_size, max_size=self.max_size)
        )
        try:
            async with pool.acquire() as conn:
                self.applied_migrations = await _guard(migrate(conn))
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close the pool; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> bool:
        """Whether PostgreSQL answers."""
        try:
            return bool(await _guard(self.pool.fetchval("SELECT 1")) == 1)
        except StoreUnavailable:
            return False

    async def create_user(self, email: str, name: str) -> User:
        """A new account with a fresh id."""
        row = await _guard(
            self.pool.fetchrow(
                "INSERT INTO users (id, email, name) VALUES ($1, $2, $3) RETURNING *",
                uuid.uuid4().hex[:16],
                email,
                name,
            )
        )
        return _user(row)

    async def get_user(self, user_id: str) -> User | None:
        """One account."""
        row = await _guard(self.pool.fetchrow("SELECT * FROM users WHERE id = $1", user_id))
        return None if row is None else _user(row)

    async def list_users(self) -> list[User]:
        """Every account, oldest first."""
        rows = await _guard(self.pool.fetch("SELECT * FROM users ORDER BY created_at, id"))
        return [_user(row) for row in rows]

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a key's hash and metadata."""
        await _guard(
            self.pool.execute(
                "INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                record.id,
                record.user_id,
                record.org_id,
                record.name,
                record.prefix,
                record.key_hash,
                record.created_at,
            )
        )

    async def find_api_key(self, prefix: str) -> ApiKeyRecord | None:
        """The key with this prefix."""
        row = await _guard(self.pool.fetchrow("SELECT * FROM api_keys WHERE prefix = $1", prefix))
        return None if row is None else _key(row)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys of one user, or of everyone."""
        rows = await _guard(
            self.pool.fetch(
                "SELECT * FROM api_keys WHERE $1::text IS NULL OR user_id = $1 "
                "ORDER BY created_at, id",
                user_id,
            )
        )
        return [_key(row) for row in rows]

    async def revoke_api_key(self, key_id_or_prefix: str, when: datetime) -> bool:
        """Revoke an active key by id or prefix."""
        status = await _guard(
            self.pool.execute(
                "UPDATE api_keys SET revoked_at = $2 "
                "WHERE (id = $1 OR prefix = $1) AND revoked_at IS NULL",
                key_id_or_prefix,
                when,
            )
        )
        return str(status) != "UPDATE 0"

    async def touch_api_key(self, key_id: str, when: datetime) -> None:
        """Record the last use of a key."""
        await _guard(
            self.pool.execute(
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
                key_id,
                when.astimezone(UTC),
            )
        )
