"""A Redis restart during ingestion loses nothing acknowledged; the SDK retries the rest.

Runs on a private redis-server with append-only persistence (the machine's shared Redis keeps
nothing on disk)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from chronos_core import BatchExporter, ExecutionEvent
from chronos_server import ServerSettings, create_app

from .helpers import STARTED, free_port, serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


class PrivateRedis:
    """A redis-server of this test, persisting every write to its append-only file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis.from_url(self.url) as client:
                    if client.ping():
                        return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: no chance to save anything on the way out."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_restart_during_ingestion_loses_nothing(
    private_redis: PrivateRedis, postgres_dsn: str, tmp_path: Path
) -> None:
    settings = ServerSettings(
        database=tmp_path / "unused.db",
        redis_url=private_redis.url,
        postgres_dsn=postgres_dsn,
        rate_limit_per_minute=0,
    )
    total = 2_000
    events = [
        ExecutionEvent(
            exec_id=f"restart:{i}",
            job_id="restart",
            status="success",
            started_at=STARTED + timedelta(milliseconds=i),
            duration_ms=1.0,
        )
        for i in range(total)
    ]
    async with serve(create_app(settings)) as live:
        key = await live.new_tenant("restart@example.com")
        exporter = BatchExporter(
            api_key=key, endpoint=live.base_url, max_batch_size=50, flush_interval=0.05
        )
        restarted = threading.Event()

        def produce() -> None:
            for i, event in enumerate(events):
                exporter.record(event)
                if i == total // 3:
                    # Kill Redis mid-stream, keep producing, bring it back a second later.
                    private_redis.kill()
                    threading.Timer(1.0, lambda: (private_redis.start(), restarted.set())).start()
                time.sleep(0.0005)

        await asyncio.to_thread(produce)
        await asyncio.to_thread(restarted.wait, 30)
        assert await asyncio.to_thread(exporter.shutdown, 60)
        stats = exporter.stats()
        assert stats.dropped_total == 0, stats
        assert stats.retried > 0, "the outage was not noticed; the test proves nothing"

        user = await live.user_of(key)
        stored = await live.context.stores.telemetry.list_executions(user, "restart", 5_000)
        assert len(stored) == total

    # And it is all on disk: a second restart still has every execution.
    private_redis.kill()
    private_redis.start()
    with redis.Redis.from_url(private_redis.url) as client:
        index = next(iter(client.scan_iter(match="chronos:{t:*}:j:restart")))
        assert client.zcard(index) == total
