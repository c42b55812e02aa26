"""Fixtures of the server tests: real SQLite files, the machine's Redis and PostgreSQL, and the
app served by uvicorn on a free loopback port."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from chronos_server import ServerSettings, create_app
from chronos_server.storage import Stores, build_stores

from .helpers import LiveServer, serve

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
STORE_KINDS = ["sqlite", "redis"]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A fresh database for the session, dropped at the end."""
    name = f"chronos_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test alone on the shared Redis; its keys are deleted after."""
    prefix = f"chronos-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1_000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


async def _reset_accounts(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('users') IS NOT NULL")
        if exists:
            await conn.execute("TRUNCATE users, api_keys")
    finally:
        await conn.close()


@pytest.fixture(params=STORE_KINDS)
async def settings(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_dsn: str, redis_prefix: str
) -> ServerSettings:
    """Settings of the embedded store, then of Redis + PostgreSQL."""
    if request.param == "sqlite":
        return ServerSettings(database=tmp_path / "chronos.db", rate_limit_per_minute=0)
    await _reset_accounts(postgres_dsn)
    return ServerSettings(
        database=tmp_path / "unused.db",
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        postgres_dsn=postgres_dsn,
        rate_limit_per_minute=0,
    )


@pytest.fixture
async def stores(settings: ServerSettings) -> AsyncIterator[Stores]:
    """The opened stores of `settings`."""
    built = build_stores(settings)
    await built.open()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def server(settings: ServerSettings) -> AsyncIterator[LiveServer]:
    """The app of `settings` on a real uvicorn."""
    async with serve(create_app(settings)) as live:
        yield live
