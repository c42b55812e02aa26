"""`ChronosAPI` and `AsyncChronosAPI` against the real server."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chronos_core import (
    AsyncChronosAPI,
    AuthenticationError,
    ChronosAPI,
    ChronosClient,
    ExecutionIngested,
    ExecutionStatus,
    JobDefinition,
    RejectedError,
)
from tests.support.live_server import ThreadedServer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def runs(count: int, job: str = "etl", version: str = "1.0") -> list[dict[str, Any]]:
    return [
        {
            "execId": f"{job}:{version}:{i}",
            "jobId": job,
            "status": "failed" if i % 5 == 0 else "success",
            "startedAt": (T0 + timedelta(seconds=i)).isoformat(),
            "durationMs": 100 + i,
            "jobVersion": version,
            "errorMessage": "boom" if i % 5 == 0 else None,
            "stdout": f"run {i}\n",
        }
        for i in range(count)
    ]


@pytest.fixture
def seeded(live_server: ThreadedServer) -> ThreadedServer:
    with ChronosClient(api_key=live_server.api_key, endpoint=live_server.url) as client:
        client.register_jobs([JobDefinition(id="etl", name="ETL", schedule="*/5 * * * *")])
        client.send_executions(runs(25))
    return live_server


def test_sync_client_reads_and_paginates(seeded: ThreadedServer) -> None:
    with ChronosAPI(api_key=seeded.api_key, endpoint=seeded.url) as api:
        jobs = api.jobs()
        assert [job.id for job in jobs] == ["etl"]
        assert jobs[0].stats.runs == 25
        assert jobs[0].last_exec_id == "etl:1.0:24"
        every = list(api.executions(page_size=7))
        assert [r.exec_id for r in every] == [f"etl:1.0:{i}" for i in reversed(range(25))]
        failed = list(api.executions(status="failed", page_size=2))
        assert {r.status for r in failed} == {ExecutionStatus.FAILED}
        assert len(failed) == 5
        page = api.executions_page(limit=10, job_id="etl")
        assert len(page.items) == 10
        assert page.next_cursor
        detail = api.execution("etl:1.0:20")
        assert detail.stdout == "run 20\n"
        assert detail.error_message == "boom"
        assert api.job("etl").definition is not None
        assert api.summary().totals.failures == 5
        assert api.timeseries(bucket="hour").bucket == "hour"
        assert [v.version for v in api.compare_versions("etl").versions] == ["1.0"]
        with pytest.raises(RejectedError) as missing:
            api.execution("nope")
        assert missing.value.status_code == 404
    with (
        ChronosAPI(api_key="chr_00000000_" + "x" * 43, endpoint=seeded.url) as bad,
        pytest.raises(AuthenticationError),
    ):
        bad.jobs()


async def test_async_client_reads_and_paginates(seeded: ThreadedServer) -> None:
    async with AsyncChronosAPI(api_key=seeded.api_key, endpoint=seeded.url) as api:
        assert [job.id for job in await api.jobs()] == ["etl"]
        ids = [r.exec_id async for r in api.executions(job_id="etl", page_size=4)]
        assert len(ids) == 25
        assert ids[0] == "etl:1.0:24"
        assert (await api.execution("etl:1.0:3")).stdout == "run 3\n"
        assert (await api.summary(job_id="etl")).totals.runs == 25


def test_follow_streams_new_runs(seeded: ThreadedServer) -> None:
    received: list[ExecutionIngested] = []
    done = threading.Event()

    def listen() -> None:
        with (
            ChronosAPI(api_key=seeded.api_key, endpoint=seeded.url) as api,
            contextlib.closing(api.follow()) as events,
        ):
            for event in events:
                received.append(event)
                if sum(e.job_id == "later" for e in received) == 3:
                    done.set()
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    with ChronosClient(api_key=seeded.api_key, endpoint=seeded.url) as client:
        for _ in range(50):  # until the listener is subscribed, runs of another job are sent
            client.send_executions(runs(1, job=f"probe-{_}"))
            if received:
                break
            done.wait(0.1)
        client.send_executions(runs(3, job="later"))
    assert done.wait(10)
    later = [e for e in received if e.job_id == "later"]
    assert [e.exec_id for e in later] == ["later:1.0:0", "later:1.0:1", "later:1.0:2"]
    assert later[0].status is ExecutionStatus.FAILED
