"""Ingestion over real HTTP, on both stores: the wire contract, idempotency, bad input."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import timedelta

from chronos_core._models import ExecutionEvent, ExecutionIngested

from .helpers import STARTED, LiveServer, around_base, event, iso

BATCH = "/api/ingest/executions/batch"
REGISTER = "/api/ingest/jobs/register"


async def test_original_client_request_and_response(server: LiveServer) -> None:
    key = await server.new_tenant()
    async with server.client(key) as http:
        registered = await http.post(
            REGISTER,
            json={"jobs": [{"id": "job-1", "name": "Reports", "schedule": "0 * * * *"}]},
        )
        sent = await http.post(BATCH, json={"executions": [event("job-1:1"), event("job-1:2")]})
        stored = await http.get("/api/executions/job-1:1")
    assert registered.status_code == 200
    assert registered.json()["success"] is True
    assert sent.status_code == 200
    body = sent.json()
    assert body["success"] is True
    assert body["ingested"] == 2
    assert body["duplicates"] == 0
    assert body["errors"] == []
    assert stored.json()["durationMs"] == 1250
    assert stored.json()["startedAt"] == iso(STARTED)


async def test_retried_batch_is_stored_and_counted_once(server: LiveServer) -> None:
    key = await server.new_tenant()
    batch = {"executions": [event(f"job-1:{i}") for i in range(5)]}
    async with server.client(key) as http:
        first = (await http.post(BATCH, json=batch)).json()
        again = (await http.post(BATCH, json=batch)).json()
        metrics = (
            await http.get(
                "/api/metrics",
                params={"jobId": "job-1", **around_base("h")},
            )
        ).json()
    assert (first["ingested"], first["duplicates"]) == (5, 0)
    assert (again["ingested"], again["duplicates"]) == (0, 5)
    assert [bucket["counts"] for bucket in metrics] == [{"success": 5}]


async def test_concurrent_duplicate_batches_store_each_execution_once(
    server: LiveServer,
) -> None:
    key = await server.new_tenant()
    batch = {"executions": [event(f"job-1:{i}", durationMs=i) for i in range(200)]}
    async with server.client(key) as http:
        answers = await asyncio.gather(*(http.post(BATCH, json=batch) for _ in range(8)))
        metrics = (
            await http.get(
                "/api/metrics",
                params=around_base("h"),
            )
        ).json()
        listed = (await http.get("/api/jobs/job-1/executions", params={"limit": 1000})).json()
    bodies = [answer.json() for answer in answers]
    assert sum(body["ingested"] for body in bodies) == 200
    assert sum(body["duplicates"] for body in bodies) == 7 * 200
    assert len(listed) == 200
    assert metrics[0]["total"] == 200
    assert metrics[0]["durationSum"] == sum(range(200))


async def test_running_then_final_event_is_one_execution(server: LiveServer) -> None:
    key = await server.new_tenant()
    running = event("job-1:7", status="running", finishedAt=None, durationMs=None)
    final = event("job-1:7", status="failed", exitCode=1, errorMessage="boom")
    async with server.client(key) as http:
        first = (await http.post(BATCH, json={"executions": [running]})).json()
        second = (await http.post(BATCH, json={"executions": [final]})).json()
        late_running = (await http.post(BATCH, json={"executions": [running]})).json()
        stored = (await http.get("/api/executions/job-1:7")).json()
        listed = (await http.get("/api/jobs/job-1/executions")).json()
    assert first["ingested"] == 1
    assert second["ingested"] == 1
    assert late_running["duplicates"] == 1
    assert stored["status"] == "failed"
    assert stored["errorMessage"] == "boom"
    assert len(listed) == 1


async def test_malformed_json_is_400(server: LiveServer) -> None:
    key = await server.new_tenant()
    async with server.client(key) as http:
        answer = await http.post(
            BATCH, content=b'{"executions": [', headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_request"
    assert "Traceback" not in answer.text


async def test_wrong_shape_is_400(server: LiveServer) -> None:
    key = await server.new_tenant()
    async with server.client(key) as http:
        answer = await http.post(BATCH, json=[event("x")])
        missing = await http.post(BATCH, json={"jobs": []})
    assert answer.status_code == 400
    assert missing.status_code == 400
    assert missing.json()["error"]["field"] == "executions"


async def test_invalid_items_are_named_and_valid_ones_stored(server: LiveServer) -> None:
    key = await server.new_tenant()
    items = [
        event("ok-1"),
        event("bad-status", status="exploded"),
        {"execId": "no-job", "status": "success", "startedAt": iso(STARTED)},
        event("ok-2"),
        event("backwards", finishedAt=iso(STARTED - timedelta(hours=1))),
        "not an object",
    ]
    async with server.client(key) as http:
        answer = await http.post(BATCH, json={"executions": items})
        ok = await http.get("/api/executions/ok-2")
        bad = await http.get("/api/executions/bad-status")
    body = answer.json()
    assert answer.status_code == 200
    assert body["success"] is False
    assert body["ingested"] == 2
    by_index = {error["index"]: error for error in body["errors"]}
    assert set(by_index) == {1, 2, 4, 5}
    assert by_index[1]["field"] == "status"
    assert by_index[2]["field"] == "jobId"
    assert "finishedAt" in by_index[4]["message"]
    assert ok.status_code == 200
    assert bad.status_code == 404


async def test_naive_timestamps_are_utc(server: LiveServer) -> None:
    key = await server.new_tenant()
    naive = iso(STARTED).removesuffix("Z")  # no offset: taken as UTC
    item = event("naive", startedAt=naive, finishedAt=iso(STARTED + timedelta(seconds=2)))
    async with server.client(key) as http:
        answer = await http.post(BATCH, json={"executions": [item]})
        stored = await http.get("/api/executions/naive")
    assert answer.status_code == 200
    assert answer.json()["ingested"] == 1
    assert stored.json()["startedAt"] == iso(STARTED)
    assert stored.json()["finishedAt"] == iso(STARTED + timedelta(seconds=2))


async def test_invalid_job_definitions_are_named(server: LiveServer) -> None:
    key = await server.new_tenant()
    jobs = [
        {"id": "a", "name": "A", "schedule": "*/5 * * * *"},
        {"id": "b", "name": "B", "schedule": "not a cron"},
        {"id": "c", "name": "C", "runMode": "recurring", "schedule": ""},
        {"id": "d", "name": "D", "runMode": "once", "schedule": "", "runAt": 1756728000000},
    ]
    async with server.client(key) as http:
        answer = (await http.post(REGISTER, json={"jobs": jobs})).json()
        listed = (await http.get("/api/jobs")).json()
    assert answer["registered"] == 2
    assert {(e["index"], e["field"]) for e in answer["errors"]} == {(1, "schedule"), (2, "")}
    assert [job["id"] for job in listed] == ["a", "d"]


async def test_too_many_items_is_413_and_stores_nothing(server: LiveServer) -> None:
    key = await server.new_tenant()
    batch = {"executions": [event(f"x:{i}") for i in range(1_001)]}
    async with server.client(key) as http:
        answer = await http.post(BATCH, json=batch)
        first = await http.get("/api/executions/x:0")
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert first.status_code == 404


async def test_body_over_limit_is_413(server: LiveServer) -> None:
    key = await server.new_tenant()
    huge = {"executions": [event("big", stdout="x" * 900_000) for _ in range(6)]}
    async with server.client(key) as http:
        answer = await http.post(BATCH, content=json.dumps(huge).encode())
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


async def test_gzip_body_is_accepted(server: LiveServer) -> None:
    key = await server.new_tenant()
    body = gzip.compress(json.dumps({"executions": [event("gz-1")]}).encode())
    async with server.client(key) as http:
        answer = await http.post(
            BATCH,
            content=body,
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )
    assert answer.status_code == 200
    assert answer.json()["ingested"] == 1


async def test_decompression_bomb_is_refused_early(server: LiveServer) -> None:
    key = await server.new_tenant()
    # 1 GB of zeros compresses to about 1 MB; the server must stop at 5 MB inflated.
    compressor = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=9)
    async with server.client(key) as http:
        answer = await http.post(BATCH, content=compressor, headers={"content-encoding": "gzip"})
    assert answer.status_code == 413
    assert "decompressed" in answer.json()["error"]["message"]


async def test_corrupt_gzip_is_400_and_unknown_encoding_415(server: LiveServer) -> None:
    key = await server.new_tenant()
    async with server.client(key) as http:
        corrupt = await http.post(BATCH, content=b"not gzip", headers={"content-encoding": "gzip"})
        brotli = await http.post(BATCH, content=b"{}", headers={"content-encoding": "br"})
    assert corrupt.status_code == 400
    assert brotli.status_code == 415


async def test_logs_are_stored_truncated(server: LiveServer) -> None:
    key = await server.new_tenant()
    limit = server.context.settings.max_log_bytes
    stdout = "start\n" + "x" * (limit * 3) + "\nthe end"
    async with server.client(key) as http:
        await http.post(BATCH, json={"executions": [event("logs", stdout=stdout)]})
        stored = (await http.get("/api/executions/logs")).json()
    assert len(stored["stdout"].encode()) <= limit
    assert stored["stdout"].endswith("the end")
    assert "truncated" in stored["stdout"]


async def test_published_summaries_are_those_of_the_stored_items(server: LiveServer) -> None:
    key = await server.new_tenant()
    broker = server.context.stores.broker
    epoch_ms = int(STARTED.timestamp() * 1000) + 5
    first = [
        event("pub-1"),
        event("pub-bad", status="exploded"),
        {**event("pub-2", status="failed", exitCode=3), "startedAt": epoch_ms, "durationMs": 7.5},
        {"exec_id": "pub-3", "job_id": "job-2", "status": "running", "started_at": iso(STARTED)},
    ]
    second = [event("pub-1"), event("pub-4", finishedAt=None, durationMs=None)]
    async with broker.subscribe(await server.user_of(key)) as published:
        await asyncio.sleep(0.05)  # let the Redis subscription settle
        async with server.client(key) as http:
            answers = [await http.post(BATCH, json={"executions": b}) for b in (first, second)]
        got = [await asyncio.wait_for(anext(published), 5) for _ in range(4)]
    assert [a.json()["ingested"] for a in answers] == [3, 1]
    expected = [
        ExecutionIngested.from_event(ExecutionEvent.model_validate(item))
        for item in (first[0], first[2], first[3], second[1])
    ]
    assert got == expected
    assert got[1].exit_code == 3
    assert got[1].duration_ms == 7.5
    assert got[1].started_at.timestamp() * 1000 == epoch_ms
