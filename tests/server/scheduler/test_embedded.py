"""The scheduler of the embedded server, with real `ChronosRunner`s (server mode) on loopback
and a manual scheduler clock: triggers run once, missed ones are recorded, one-time jobs fire
once and re-arm, and a client built to the original contract works."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import socketio

from chronos_core import ExecutionStatus
from chronos_server import create_app
from chronos_server.scheduler import ManualClock, missed_exec_id, trigger_id_for
from tests.server.helpers import serve

from .conftest import Runners, embedded_settings, eventually, executions, joined, scheduler_of
from .conftest import settled as settled_count

MINUTE = timedelta(minutes=1)


async def test_due_minutes_run_once_then_missed_without_runner(
    tmp_path: Path, clock: ManualClock, runners: Runners
) -> None:
    async with serve(create_app(embedded_settings(tmp_path), scheduler_clock=clock)) as live:
        key = await live.new_tenant()
        tenant = await live.user_of(key)
        scheduler = scheduler_of(live)
        runs: list[int] = []
        runner = runners.make(live, key)
        runner.register("minutely", lambda: runs.append(1), schedule="* * * * *")
        runner.start()
        assert await eventually(lambda: joined(live, scheduler))
        start = clock.now()
        for n in range(1, 4):
            clock.advance(MINUTE)
            assert await eventually(lambda n=n: settled_count(scheduler) == n)
        await runners.stop(runner)
        stored = await eventually(lambda: _final(live, tenant, "minutely", 3), timeout=20)
        assert sorted(e.trigger_id for e in stored) == [
            trigger_id_for("minutely", start + n * MINUTE) for n in (1, 2, 3)
        ]
        assert all(e.status is ExecutionStatus.SUCCESS for e in stored)
        assert len(runs) == 3

        # Nobody connected any more: the next due minute is recorded as missed, once.
        clock.advance(MINUTE)
        assert await eventually(lambda: settled_count(scheduler) == 4)
        due = start + 4 * MINUTE
        missed = await live.context.stores.telemetry.get_execution(
            tenant, missed_exec_id(trigger_id_for("minutely", due))
        )
        assert missed is not None
        assert missed.status is ExecutionStatus.MISSED
        assert missed.scheduled_for == due
        assert "no runner" in (missed.error_message or "")
        scheduler.wake()
        await asyncio.sleep(0.3)
        assert len(await executions(live, tenant, "minutely")) == 4
        assert scheduler.stats()["missed"] == 1


async def _final(live: Any, tenant: str, job_id: str, count: int) -> list[Any] | None:
    found = await executions(live, tenant, job_id)
    return found if len(found) >= count else None


async def test_one_time_job_fires_once_and_rearms_when_changed(
    tmp_path: Path, clock: ManualClock, runners: Runners
) -> None:
    def once(**fields: Any) -> dict[str, Any]:
        return {"id": "once", "name": "once", "runMode": "once", "source": "runner", **fields}

    async with serve(create_app(embedded_settings(tmp_path), scheduler_clock=clock)) as live:
        key = await live.new_tenant()
        tenant = await live.user_of(key)
        scheduler = scheduler_of(live)
        run_at = clock.now() + 90 * timedelta(seconds=1)
        runs: list[int] = []
        runner = runners.make(live, key)
        runner.register("once", lambda: runs.append(1), run_at=run_at)
        runner.start()
        assert await eventually(lambda: joined(live, scheduler))

        clock.advance(MINUTE)  # not yet due
        await asyncio.sleep(0.3)
        assert runs == []
        clock.advance(MINUTE)
        assert await eventually(lambda: len(runs) == 1)
        for _ in range(3):  # later ticks, and re-registering the same definition, do nothing
            await _register(live, key, once(runAt=run_at.isoformat()))
            clock.advance(MINUTE)
            scheduler.wake()
            await asyncio.sleep(0.3)
        assert runs == [1]

        # A new runAt is a new arming: it fires once more, at the new time.
        new_at = clock.now() + MINUTE
        await _register(live, key, once(runAt=new_at.isoformat()))
        scheduler.wake()
        await asyncio.sleep(0.3)
        assert runs == [1]
        clock.advance(MINUTE)
        assert await eventually(lambda: len(runs) == 2)

        # runMode once with a cron: the first match after arming only.
        await _register(live, key, once(schedule="*/5 * * * *"))
        scheduler.wake()
        for _ in range(12):
            clock.advance(MINUTE)
            await asyncio.sleep(0.1)
        assert await eventually(lambda: len(runs) == 3)
        await asyncio.sleep(0.3)
        assert runs == [1, 1, 1]
        stored = await eventually(lambda: _final(live, tenant, "once", 3), timeout=20)
        assert len({e.trigger_id for e in stored}) == 3


async def _register(live: Any, key: str, job: dict[str, Any]) -> None:
    async with live.client(key) as http:
        response = await http.post("/api/ingest/jobs/register", json={"jobs": [job]})
        assert response.status_code == 200, response.text


async def test_client_of_the_original_contract(tmp_path: Path, clock: ManualClock) -> None:
    """Socket.IO `join-job` with `x-api-key`, `job:trigger` in, the batch endpoint out; it
    neither emits `trigger:ack` nor answers in time (its handler is slow): still delivered."""
    settings = embedded_settings(tmp_path, scheduler_ack_timeout=0.3)
    async with serve(create_app(settings, scheduler_clock=clock)) as live:
        key = await live.new_tenant()
        tenant = await live.user_of(key)
        scheduler = scheduler_of(live)
        await _register(
            live,
            key,
            {"id": "legacy", "name": "Legacy", "schedule": "* * * * *", "runMode": "recurring"},
        )
        received: list[dict[str, Any]] = []
        got = threading.Event()
        client = socketio.Client(reconnection=False)

        def on_trigger(payload: dict[str, Any]) -> None:
            received.append(payload)
            got.set()
            import httpx

            httpx.post(
                live.base_url + "/api/ingest/executions/batch",
                headers={"x-api-key": key},
                json={
                    "executions": [
                        {
                            "execId": payload["triggerId"],
                            "jobId": payload["jobId"],
                            "status": "success",
                            "startedAt": payload["scheduledFor"],
                        }
                    ]
                },
            )
            threading.Event().wait(0.6)  # slower than the acknowledgement timeout

        client.on("job:trigger", on_trigger)
        await asyncio.to_thread(
            client.connect, live.base_url, headers={"x-api-key": key}, transports=["websocket"]
        )
        try:
            await asyncio.to_thread(client.emit, "join-job", "legacy")
            assert await eventually(lambda: joined(live, scheduler))
            clock.advance(MINUTE)
            assert await eventually(lambda: settled_count(scheduler) == 1)
            [done] = scheduler.recent
            assert done.delivery.legacy
            assert done.delivery.answers == ["legacy"]
            assert got.wait(5)
            assert set(received[0]) == {"jobId", "triggerId", "scheduledFor"}
            [stored] = await eventually(lambda: _final(live, tenant, "legacy", 1))
            assert stored.exec_id == received[0]["triggerId"]
        finally:
            await asyncio.to_thread(client.disconnect)
