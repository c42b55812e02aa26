"""Two tenants with the same job ids never see or overwrite each other's data."""

from __future__ import annotations

import asyncio

from .helpers import LiveServer, around_base, event

BATCH = "/api/ingest/executions/batch"
REGISTER = "/api/ingest/jobs/register"


async def test_same_job_ids_stay_apart(server: LiveServer) -> None:
    alice = await server.new_tenant("alice@example.com")
    bob = await server.new_tenant("bob@example.com")
    async with server.client(alice) as a, server.client(bob) as b:
        await a.post(
            REGISTER, json={"jobs": [{"id": "job-1", "name": "Alice's", "schedule": "* * * * *"}]}
        )
        await b.post(
            REGISTER, json={"jobs": [{"id": "job-1", "name": "Bob's", "schedule": "0 0 * * *"}]}
        )
        # Same execId too: each tenant has its own.
        sent_a = (
            await a.post(BATCH, json={"executions": [event("job-1:1", status="success")]})
        ).json()
        sent_b = (
            await b.post(BATCH, json={"executions": [event("job-1:1", status="failed")]})
        ).json()
        await b.post(BATCH, json={"executions": [event("job-1:2", status="failed")]})
        job_a, job_b = (
            (await a.get("/api/jobs/job-1")).json(),
            (await b.get("/api/jobs/job-1")).json(),
        )
        exec_a = (await a.get("/api/executions/job-1:1")).json()
        exec_b = (await b.get("/api/executions/job-1:1")).json()
        only_b = await a.get("/api/executions/job-1:2")
        list_a = (await a.get("/api/jobs/job-1/executions")).json()
        metrics_a = (await a.get("/api/metrics", params={"jobId": "job-1", **around_base()})).json()
        totals_b = (await b.get("/api/metrics", params=around_base())).json()
    assert sent_a["ingested"] == 1
    assert sent_b["ingested"] == 1
    assert job_a["name"] == "Alice's"
    assert job_b["name"] == "Bob's"
    assert exec_a["status"] == "success"
    assert exec_b["status"] == "failed"
    assert only_b.status_code == 404
    assert [e["execId"] for e in list_a] == ["job-1:1"]
    assert metrics_a[0]["counts"] == {"success": 1}
    assert totals_b[0]["counts"] == {"failed": 2}


async def test_realtime_events_reach_only_their_tenant(server: LiveServer) -> None:
    alice = await server.new_tenant("alice@example.com")
    bob = await server.new_tenant("bob@example.com")
    alice_id = await server.user_of(alice)
    bob_id = await server.user_of(bob)
    broker = server.context.stores.broker
    async with broker.subscribe(alice_id) as alice_events, broker.subscribe(bob_id) as bob_events:
        await asyncio.sleep(0.05)  # let the Redis subscription settle
        async with server.client(alice) as a, server.client(bob) as b:
            await a.post(BATCH, json={"executions": [event("a-1"), event("a-1")]})
            await b.post(BATCH, json={"executions": [event("b-1", status="failed", exitCode=2)]})
        got_a = await asyncio.wait_for(anext(alice_events), 5)
        got_b = await asyncio.wait_for(anext(bob_events), 5)
        assert got_a.exec_id == "a-1"
        assert got_b.exec_id == "b-1"
        assert got_b.exit_code == 2
        # The duplicate in Alice's batch was not published twice, and nothing of Bob's leaked.
        for stream in (alice_events, bob_events):
            try:
                extra = await asyncio.wait_for(anext(stream), 0.3)
            except TimeoutError:
                continue
            raise AssertionError(f"unexpected event {extra}")
