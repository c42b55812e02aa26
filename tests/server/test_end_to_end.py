"""The SDK's own exporter and client against a real server on loopback, on both stores."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from chronos_core import BatchExporter, ChronosClient, ExecutionEvent, JobDefinition

from .helpers import STARTED, LiveServer


async def test_exporter_delivers_everything_once(server: LiveServer) -> None:
    key = await server.new_tenant()
    client = ChronosClient(api_key=key, endpoint=server.base_url)
    registered = await asyncio.to_thread(
        client.register_jobs, [JobDefinition(id="nightly", name="Nightly", schedule="0 3 * * *")]
    )
    assert registered.success
    exporter = BatchExporter(api_key=key, endpoint=server.base_url, max_batch_size=50)
    events = [
        ExecutionEvent(
            exec_id=f"nightly:{i}",
            job_id="nightly",
            status="success" if i % 10 else "failed",
            started_at=STARTED + timedelta(seconds=i),
            duration_ms=float(i),
            stdout="x" * 2_000,  # large enough for the SDK to gzip
        )
        for i in range(230)
    ]
    assert exporter.record_many(events) == 230
    assert await asyncio.to_thread(exporter.flush, 30)
    # A retry of everything (as after a lost response) adds nothing.
    assert exporter.record_many(events[:50]) == 50
    assert await asyncio.to_thread(exporter.shutdown, 30)
    stats = exporter.stats()
    client.close()
    assert stats.dropped_total == 0
    user = await server.user_of(key)
    stored = await server.context.stores.telemetry.list_executions(user, "nightly", limit=1_000)
    assert len(stored) == 230
    assert {e.exec_id for e in stored} == {e.exec_id for e in events}
    job = await server.context.stores.telemetry.get_job(user, "nightly")
    assert job is not None
    assert job.schedule == "0 3 * * *"
