"""Helpers of the scheduler tests: real servers, real `ChronosRunner`s in server mode, and a
manual scheduler clock walked from cron minute to cron minute."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chronos_core import ExecutionEvent
from chronos_core.runner import ChronosRunner
from chronos_server import ServerSettings
from chronos_server.scheduler import ManualClock, TriggerScheduler
from tests.server.helpers import LiveServer


@pytest.fixture
def clock() -> ManualClock:
    """A scheduler clock at the start of the current minute (inside the retention)."""
    return ManualClock(datetime.now(UTC).replace(second=0, microsecond=0))


def fast(**overrides: Any) -> dict[str, Any]:
    """Scheduler settings for tests: quick refresh, short acknowledgement timeout."""
    options: dict[str, Any] = {
        "rate_limit_per_minute": 0,
        "scheduler_refresh_seconds": 0.1,
        "scheduler_ack_timeout": 0.5,
        "scheduler_lease_seconds": 1.0,
    }
    options.update(overrides)
    return options


def embedded_settings(tmp_path: Path, **overrides: Any) -> ServerSettings:
    """The embedded server with test scheduler settings."""
    return ServerSettings(database=tmp_path / "chronos.db", **fast(**overrides))


def scheduler_of(live: LiveServer) -> TriggerScheduler:
    """The app's scheduler."""
    scheduler = live.app.state.scheduler
    assert isinstance(scheduler, TriggerScheduler)
    return scheduler


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.02)


class Runners:
    """`ChronosRunner`s in server mode, stopped at the end of the test."""

    def __init__(self) -> None:
        self.started: list[ChronosRunner] = []

    def make(self, live: LiveServer, key: str, **options: Any) -> ChronosRunner:
        runner = ChronosRunner(
            mode="server",
            api_key=key,
            endpoint=live.base_url,
            reconnect_delay=0.1,
            reconnect_delay_max=0.5,
            stop_timeout=5,
            **options,
        )
        self.started.append(runner)
        return runner

    async def stop(self, runner: ChronosRunner) -> None:
        await asyncio.to_thread(runner.stop, 5)


@pytest.fixture
async def runners() -> AsyncIterator[Runners]:
    """Makes runners; stops every one of them at the end."""
    made = Runners()
    try:
        yield made
    finally:
        await asyncio.gather(*(asyncio.to_thread(r.stop, 5) for r in made.started))


async def executions(live: LiveServer, tenant: str, job_id: str) -> list[ExecutionEvent]:
    """Final executions of a job stored by the server."""
    stored = await live.context.stores.telemetry.list_executions(tenant, job_id, 10_000)
    return [e for e in stored if e.status.is_final]


async def joined(live: LiveServer, *schedulers: TriggerScheduler, count: int = 1) -> bool:
    """Whether the leader among `schedulers` sees `count` runners and has planned the job."""
    for scheduler in schedulers:
        if scheduler.leading and scheduler.planned():
            tenant, job_id = scheduler.planned()[0]
            return len(await scheduler.directory.runners(tenant, job_id)) >= count
    return False


def settled(*schedulers: TriggerScheduler) -> int:
    """Triggers settled by all `schedulers` together."""
    return sum(len(s.recent) for s in schedulers)
