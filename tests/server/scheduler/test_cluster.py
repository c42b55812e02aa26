"""Several server processes sharing Redis: one leader schedules, each trigger runs on exactly one
runner, a runner that stops answering loses its trigger to another, and a dead leader is
replaced. The first test runs two apps (each with its own Socket.IO manager, Redis clients and
scheduler) in this process on one manual clock; the last kills a real server process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chronos_core import ExecutionStatus
from chronos_server import ServerSettings, create_app
from chronos_server.scheduler import ManualClock
from tests.server.conftest import REDIS_URL, _reset_accounts
from tests.server.helpers import free_port, serve

from .conftest import (
    Runners,
    embedded_settings,
    eventually,
    executions,
    fast,
    joined,
    scheduler_of,
    settled,
)

MINUTE = timedelta(minutes=1)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def clock() -> ManualClock:
    """A scheduler clock half a minute past the current minute. A new leader's first tick
    looks a few seconds back, and with Redis that tick waits until the leader hears runners'
    answers: the runners may have joined by then, and a due time at the very start would be
    run before the test moves the clock."""
    return ManualClock(datetime.now(UTC).replace(second=30, microsecond=0))


@pytest.fixture
async def shared(tmp_path: Path, postgres_dsn: str, redis_prefix: str) -> ServerSettings:
    """Settings of server processes sharing one Redis and one PostgreSQL."""
    await _reset_accounts(postgres_dsn)
    return ServerSettings(
        database=tmp_path / "unused.db",
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        postgres_dsn=postgres_dsn,
        **fast(),
    )


async def test_fifty_triggers_run_exactly_once_over_two_servers_and_three_runners(
    shared: ServerSettings, clock: ManualClock, runners: Runners
) -> None:
    async with (
        serve(create_app(shared, scheduler_clock=clock)) as one,
        serve(create_app(shared, scheduler_clock=clock)) as two,
    ):
        key = await one.new_tenant()
        tenant = await one.user_of(key)
        schedulers = [scheduler_of(one), scheduler_of(two)]
        assert await eventually(lambda: sum(s.leading for s in schedulers) == 1)
        made = []
        for live in (one, one, two):
            runner = runners.make(live, key)
            runner.register("etl", lambda: None, schedule="* * * * *", overlap="allow")
            runner.start()
            made.append(runner)
        assert await eventually(lambda: joined(one, *schedulers, count=3))
        for n in range(1, 51):
            clock.advance(MINUTE)
            assert await eventually(lambda n=n: settled(*schedulers) == n), n
        stored = await eventually(lambda: _final(one, tenant, "etl", 50), timeout=30)
        await asyncio.sleep(0.5)  # nothing more arrives
        stored = await executions(one, tenant, "etl")
        by_trigger = Counter(e.trigger_id for e in stored)
        assert len(by_trigger) == 50
        assert set(by_trigger.values()) == {1}
        assert {e.status for e in stored} == {ExecutionStatus.SUCCESS}
        # One runner per trigger, spread over all three (on both processes).
        per_runner = Counter(e.metadata["runner"] for e in stored)
        assert set(per_runner) == {r.runner_id for r in made}
        assert sum(s.stats()["triggers"] for s in schedulers) == 50
        assert sum(s.stats()["missed"] for s in schedulers) == 0


async def test_a_leader_that_holds_no_socket_hears_the_answers_of_runners_elsewhere(
    shared: ServerSettings, clock: ManualClock, runners: Runners
) -> None:
    """The runner is connected to the follower only: each trigger reaches it through the
    other process, and its acknowledgement comes back the same way. python-socketio starts a
    process's Redis listener when the first client connects to that process, so a leader
    without sockets of its own heard no answer: every trigger timed out, and was recorded
    `missed` while the runner ran it."""
    async with (
        serve(create_app(shared, scheduler_clock=clock)) as one,
        serve(create_app(shared, scheduler_clock=clock)) as two,
    ):
        key = await one.new_tenant()
        tenant = await one.user_of(key)
        assert await eventually(lambda: scheduler_of(one).leading != scheduler_of(two).leading)
        leader, follower = (one, two) if scheduler_of(one).leading else (two, one)
        scheduler = scheduler_of(leader)
        runner = runners.make(follower, key)
        runner.register("etl", lambda: None, schedule="* * * * *", overlap="allow")
        runner.start()
        assert await eventually(lambda: joined(leader, scheduler))
        for n in range(1, 4):
            clock.advance(MINUTE)
            assert await eventually(lambda n=n: settled(scheduler) == n, timeout=10), n
        assert [t.delivery.answers for t in scheduler.recent] == [["started"]] * 3
        assert scheduler.leading
        assert not scheduler_of(follower).recent
        stored = await eventually(lambda: _final(leader, tenant, "etl", 3), timeout=20)
        assert {e.status for e in stored} == {ExecutionStatus.SUCCESS}
        assert scheduler.stats()["missed"] == 0


async def _final(live: Any, tenant: str, job_id: str, count: int) -> list[Any] | None:
    found = await executions(live, tenant, job_id)
    return found if len(found) >= count else None


async def test_a_runner_that_stops_answering_loses_the_trigger_to_another(
    tmp_path: Path, clock: ManualClock, runners: Runners
) -> None:
    async with serve(create_app(embedded_settings(tmp_path), scheduler_clock=clock)) as live:
        key = await live.new_tenant()
        tenant = await live.user_of(key)
        scheduler = scheduler_of(live)
        await _register(live, key, "etl")
        victim = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited on
            [
                sys.executable,
                "-m",
                "tests.server.scheduler.victim_runner",
                live.base_url,
                key,
                "etl",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert await eventually(lambda: joined(live, scheduler))
            clock.advance(MINUTE)  # the victim alone: it acknowledges and runs this one
            assert await eventually(lambda: settled(scheduler) == 1)
            assert scheduler.recent[0].delivery.answers == ["started"]
            assert await eventually(lambda: _final(live, tenant, "etl", 1), timeout=20)

            healthy = runners.make(live, key)
            ran: list[int] = []
            healthy.register("etl", lambda: ran.append(1), overlap="allow")
            healthy.start()
            assert await eventually(lambda: joined(live, scheduler, count=2))
            os.kill(victim.pid, signal.SIGSTOP)  # connected, but answers nothing any more
            for n in range(2, 6):
                clock.advance(MINUTE)
                assert await eventually(lambda n=n: settled(scheduler) == n, timeout=10)
            later = list(scheduler.recent)[1:]
            assert all(t.delivery.outcome == "delivered" for t in later)
            assert {t.delivery.answers[-1] for t in later} == {"started"}
            assert any(t.delivery.answers == ["no-ack", "started"] for t in later)
            assert await eventually(lambda: len(ran) == 4)
            stored = await eventually(lambda: _final(live, tenant, "etl", 5), timeout=20)
            assert Counter(e.trigger_id for e in stored).most_common(1)[0][1] == 1
            assert {
                e.metadata["runner"]
                for e in stored
                if e.trigger_id in {t.trigger_id for t in later}
            } == {healthy.runner_id}
        finally:
            victim.kill()
            victim.wait(10)
            if victim.stdout is not None:
                victim.stdout.close()
        # Killed: its socket is gone from the room.
        assert await eventually(lambda: _runner_count(scheduler, tenant, "etl", 1))


async def _runner_count(scheduler: Any, tenant: str, job_id: str, count: int) -> bool:
    return len(await scheduler.directory.runners(tenant, job_id)) == count


async def _register(live: Any, key: str, job_id: str, schedule: str = "* * * * *") -> None:
    async with live.client(key) as http:
        job = {"id": job_id, "name": job_id, "schedule": schedule, "runMode": "recurring"}
        response = await http.post("/api/ingest/jobs/register", json={"jobs": [job]})
        assert response.status_code == 200, response.text


def _server_process(settings: ServerSettings, port: int) -> subprocess.Popen[bytes]:
    assert settings.redis_url is not None
    assert settings.postgres_dsn is not None
    env = {
        **os.environ,
        "CHRONOS_REDIS_URL": settings.redis_url.get_secret_value(),
        "CHRONOS_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "CHRONOS_POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "CHRONOS_RATE_LIMIT_PER_MINUTE": "0",
        "CHRONOS_SCHEDULER_LEASE_SECONDS": "1",
        "CHRONOS_SCHEDULER_REFRESH_SECONDS": "0.2",
    }
    code = (
        "import uvicorn; from chronos_server import create_app; "
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning')"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)


async def test_a_dead_leader_is_replaced(shared: ServerSettings, runners: Runners) -> None:
    """Real clock, a per-second cron: the leader process is killed (SIGKILL, no release);
    the other takes the lease and the triggers go on, none run twice."""
    port = free_port()
    leader = _server_process(shared, port)
    try:
        # Up first, alone: the subprocess holds the lease.
        assert await eventually(lambda: _up(port), timeout=30)
        async with serve(create_app(shared)) as survivor:
            scheduler = scheduler_of(survivor)
            key = await survivor.new_tenant()
            tenant = await survivor.user_of(key)
            runner = runners.make(survivor, key)
            runner.register("tick", lambda: None, schedule="* * * * * *", overlap="allow")
            runner.start()
            assert not scheduler.leading
            # The leader holds no socket: it hears the runner's answers through Redis only.
            # Three runs take longer than its acknowledgement timeout (2 s), so an answer it
            # did not hear would be recorded `missed` beside the run before it is killed.
            assert await eventually(lambda: _final(survivor, tenant, "tick", 3), timeout=20)
            assert not scheduler.leading  # the other process delivered those
            leader.send_signal(signal.SIGKILL)
            leader.wait(10)
            killed_at = len(await executions(survivor, tenant, "tick"))
            assert await eventually(lambda: scheduler.leading, timeout=10)
            assert await eventually(
                lambda: _final(survivor, tenant, "tick", killed_at + 3), timeout=20
            )
            await runners.stop(runner)
            stored = await executions(survivor, tenant, "tick")
            assert set(Counter(e.trigger_id for e in stored).values()) == {1}
            assert scheduler.stats()["elections"] == 1
    finally:
        leader.kill()
        leader.wait(10)


async def _up(port: int) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"http://127.0.0.1:{port}/api/health")).status_code < 500
    except httpx.HTTPError:
        return False
