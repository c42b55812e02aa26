"""The read API on both stores: filters, keyset pages while runs arrive, job summaries, detail,
versions, and the OpenAPI surface."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .helpers import LiveServer, iso

BATCH = "/api/ingest/executions/batch"
REGISTER = "/api/ingest/jobs/register"
NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(hours=3)


def run(i: int, job: str = "job-a", status: str = "success", **fields: Any) -> dict[str, Any]:
    """A run started `i` seconds after T0."""
    started = T0 + timedelta(seconds=i)
    body: dict[str, Any] = {
        "execId": f"{job}:{i}",
        "jobId": job,
        "status": status,
        "startedAt": iso(started),
        "durationMs": 100 + i,
        "exitCode": 0 if status == "success" else 1,
    }
    body.update(fields)
    return body


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def close_to(estimate: float, exact: float) -> bool:
    # The histogram's stated error: half a bucket, 1/32 of the value.
    return abs(estimate - exact) <= exact / 32 + 1e-9


async def pages(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await http.get("/api/executions", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            return items


async def test_filters(server: LiveServer) -> None:
    key = await server.new_tenant()
    rng = random.Random(4)
    sent = []
    for i in range(60):
        job = rng.choice(["job-a", "job-b"])
        status = rng.choice(["success", "success", "failed", "timeout"])
        version = rng.choice(["1.0", "2.0"])
        source = rng.choice(["celery", "rq"])
        sent.append(run(i, job, status, jobVersion=version, source=source))
    async with server.client(key) as http:
        assert (await http.post(BATCH, json={"executions": sent})).json()["ingested"] == 60
        newest_first = sorted(sent, key=lambda e: (e["startedAt"], e["execId"]), reverse=True)

        async def check(params: dict[str, Any], keep: Any) -> None:
            got = [e["execId"] for e in await pages(http, limit=7, **params)]
            assert got == [e["execId"] for e in newest_first if keep(e)], params

        await check({}, lambda e: True)
        await check({"jobId": "job-b"}, lambda e: e["jobId"] == "job-b")
        await check({"status": "failed"}, lambda e: e["status"] == "failed")
        await check(
            {"status": ["failed", "timeout"]}, lambda e: e["status"] in ("failed", "timeout")
        )
        await check(
            {"jobId": "job-a", "status": "success"},
            lambda e: e["jobId"] == "job-a" and e["status"] == "success",
        )
        await check({"jobVersion": "2.0"}, lambda e: e["jobVersion"] == "2.0")
        await check({"source": "rq"}, lambda e: e["source"] == "rq")
        since, until = iso(T0 + timedelta(seconds=10)), iso(T0 + timedelta(seconds=30))
        await check(
            {"since": since, "until": until},
            lambda e: since <= e["startedAt"] < until,
        )
        listed = (await http.get("/api/executions", params={"limit": 1})).json()["items"][0]
        assert "stdout" not in listed
        assert listed["jobVersion"]
        bad = await http.get("/api/executions", params={"cursor": "!!"})
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "cursor"


async def test_pages_stay_correct_while_runs_arrive(server: LiveServer) -> None:
    key = await server.new_tenant()
    # Several runs in the same millisecond: the execId breaks the tie.
    first = [run(i // 3, "job-a", execId=f"job-a:{i:03d}") for i in range(40)]
    async with server.client(key) as http:
        await http.post(BATCH, json={"executions": first})
        seen: list[str] = []
        cursor = None
        arrivals = 0
        while True:
            params: dict[str, Any] = {"limit": 6, "jobId": "job-a"}
            if cursor:
                params["cursor"] = cursor
            body = (await http.get("/api/executions", params=params)).json()
            seen += [e["execId"] for e in body["items"]]
            cursor = body["nextCursor"]
            if cursor is None:
                break
            # Newer runs arrive between pages; they belong before the first page, not in later ones.
            arrivals += 1
            newer = run(1_000 + arrivals, "job-a")
            await http.post(BATCH, json={"executions": [newer]})
        expected = sorted(first, key=lambda e: (e["startedAt"], e["execId"]), reverse=True)
        assert seen == [e["execId"] for e in expected]
        assert arrivals >= 6
        # A fresh listing starts with the newcomers.
        head = (await http.get("/api/executions", params={"limit": 1})).json()["items"]
        assert head[0]["execId"] == f"job-a:{1_000 + arrivals}"


async def test_job_summaries(server: LiveServer) -> None:
    key = await server.new_tenant()
    rng = random.Random(7)
    durations = [float(rng.randint(5, 20_000)) for _ in range(200)]
    runs = [
        run(i, "etl", "failed" if i % 10 == 0 else "success", durationMs=d)
        for i, d in enumerate(durations)
    ]
    async with server.client(key) as http:
        await http.post(
            REGISTER,
            json={
                "jobs": [
                    {"id": "etl", "name": "ETL", "schedule": "*/15 * * * *", "version": "3"},
                    {"id": "idle", "name": "Idle", "schedule": "0 9 * * *", "timezone": "UTC"},
                ]
            },
        )
        await http.post(BATCH, json={"executions": runs})
        await http.post(BATCH, json={"executions": [run(500, "unregistered")]})
        jobs = (await http.get("/api/jobs")).json()
    by_id = {job["id"]: job for job in jobs}
    assert sorted(by_id) == ["etl", "idle", "unregistered"]
    etl = by_id["etl"]
    assert etl["name"] == "ETL"
    assert etl["lastExecId"] == "etl:199"
    assert etl["lastStatus"] == "success"
    assert etl["lastRunAt"] == iso(T0 + timedelta(seconds=199))
    stats = etl["stats"]
    assert stats["runs"] == 200
    assert stats["failures"] == 20
    assert stats["successRate"] == 0.9
    assert close_to(stats["p95Ms"], exact_percentile(durations, 0.95))
    assert close_to(stats["p50Ms"], exact_percentile(durations, 0.5))
    next_run = datetime.fromisoformat(etl["nextRunAt"])
    assert next_run > datetime.now(UTC)
    assert next_run.minute % 15 == 0
    assert next_run - datetime.now(UTC) <= timedelta(minutes=15)
    assert by_id["idle"]["lastStatus"] is None
    assert by_id["idle"]["stats"]["runs"] == 0
    assert datetime.fromisoformat(by_id["idle"]["nextRunAt"]).hour == 9
    assert by_id["unregistered"]["registered"] is False
    assert by_id["unregistered"]["nextRunAt"] is None


async def test_stats_of_the_current_window_include_runs_just_stored(server: LiveServer) -> None:
    key = await server.new_tenant()
    async with server.client(key) as http:
        await http.post(BATCH, json={"executions": [run(i, "etl") for i in range(10)]})
        assert (await http.get("/api/jobs")).json()[0]["stats"]["runs"] == 10
        summary = (await http.get("/api/analytics/summary")).json()
        assert summary["totals"]["runs"] == 10
        await http.post(BATCH, json={"executions": [run(i, "etl") for i in range(10, 15)]})
        # Read again at once: the default window is computed afresh, never served stale.
        assert (await http.get("/api/jobs")).json()[0]["stats"]["runs"] == 15
        summary = (await http.get("/api/analytics/summary")).json()
        assert summary["totals"]["runs"] == 15


async def test_job_detail_versions_and_execution_detail(server: LiveServer) -> None:
    key = await server.new_tenant()
    old = [run(i, "etl", jobVersion="1.0", durationMs=100) for i in range(20)]
    new = [
        run(100 + i, "etl", "failed" if i % 2 else "success", jobVersion="1.1", durationMs=300)
        for i in range(20)
    ]
    failing = run(
        999,
        "etl",
        "failed",
        jobVersion="1.1",
        errorType="KeyError",
        errorMessage="'region'",
        errorStack="Traceback ...\nKeyError: 'region'",
        codeSnippet="region = row['region']",
        codeLanguage="python",
        stdout="loading\n",
        stderr="oops\n",
    )
    async with server.client(key) as http:
        await http.post(
            REGISTER, json={"jobs": [{"id": "etl", "name": "ETL", "schedule": "@daily"}]}
        )
        await http.post(BATCH, json={"executions": [*old, *new, failing]})
        detail = (await http.get("/api/jobs/etl")).json()
        versions = (await http.get("/api/jobs/etl/versions")).json()
        execution = (await http.get("/api/executions/etl:999")).json()
        missing = await http.get("/api/jobs/nope")
        missing_versions = await http.get("/api/jobs/nope/versions")
    assert detail["definition"]["schedule"] == "@daily"
    assert [v["version"] for v in detail["versions"]] == ["1.0", "1.1"]
    assert detail["versions"][0]["stats"]["runs"] == 20
    assert detail["versions"][0]["firstSeen"] == iso(T0)
    assert detail["versions"][1]["lastSeen"] == iso(T0 + timedelta(seconds=999))
    assert len(detail["recentRuns"]) == 20
    assert detail["recentRuns"][0]["execId"] == "etl:999"
    assert versions["previous"] == "1.0"
    assert versions["latest"] == "1.1"
    assert versions["regressed"] is True
    assert versions["failureRateDelta"] > 0.4
    assert versions["p95Ratio"] > 2.5
    assert execution["errorStack"].endswith("KeyError: 'region'")
    assert execution["codeSnippet"] == "region = row['region']"
    assert execution["stdout"] == "loading\n"
    assert execution["stderr"] == "oops\n"
    assert missing.status_code == 404
    assert missing_versions.status_code == 404


async def test_openapi_documents_every_read_route(server: LiveServer) -> None:
    async with server.client() as http:
        schema = (await http.get("/schema/openapi.json")).json()
    read_routes = {
        path: ops
        for path, ops in schema["paths"].items()
        if path.startswith(("/api/jobs", "/api/executions", "/api/analytics", "/api/metrics"))
    }
    assert len(read_routes) == 9
    ids = set()
    for ops in read_routes.values():
        operation = ops["get"]
        ids.add(operation["operationId"])
        content = operation["responses"]["200"]["content"]["application/json"]
        assert content["examples"], operation["operationId"]
    assert {"listJobs", "getJob", "listExecutions", "getExecution"} <= ids
    assert schema["paths"]["/api/stream/executions"]["get"]["operationId"] == "streamExecutions"
