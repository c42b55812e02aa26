"""Analytics on both stores: percentiles against the stored runs, rankings, time series,
next runs across a DST change, and tenant scoping of every read route."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from chronos_core._models import JobDefinition
from chronos_server.query.schedule import next_run

from .helpers import LiveServer, iso
from .test_read_api import BATCH, REGISTER, T0, close_to, exact_percentile, pages, run


async def test_summary_percentiles_and_rankings(server: LiveServer) -> None:
    key = await server.new_tenant()
    rng = random.Random(11)
    sent: list[dict[str, Any]] = []
    plan = {"fast": (10, 50, 0.0), "slow": (2_000, 9_000, 0.1), "flaky": (100, 400, 0.5)}
    for job, (low, high, failing) in plan.items():
        for i in range(150):
            status = "failed" if rng.random() < failing else "success"
            sent.append(run(i * 7, job, status, durationMs=float(rng.randint(low, high))))
    async with server.client(key) as http:
        for i in range(0, len(sent), 200):
            await http.post(BATCH, json={"executions": sent[i : i + 200]})
        summary = (await http.get("/api/analytics/summary")).json()
        one = (await http.get("/api/analytics/summary", params={"jobId": "slow"})).json()
        series = (
            await http.get(
                "/api/analytics/timeseries",
                params={"bucket": "hour", "since": iso(T0 - timedelta(hours=1)), "until": iso(T0)},
            )
        ).json()
        minutes = (
            await http.get(
                "/api/analytics/timeseries",
                params={
                    "bucket": "minute",
                    "jobId": "flaky",
                    "since": iso(T0),
                    "until": iso(T0 + timedelta(minutes=4)),
                },
            )
        ).json()
        too_long = await http.get(
            "/api/analytics/timeseries",
            params={"bucket": "minute", "since": iso(T0 - timedelta(days=3))},
        )
    durations = [e["durationMs"] for e in sent]
    totals = summary["totals"]
    assert totals["runs"] == 450
    assert totals["failures"] == sum(e["status"] == "failed" for e in sent)
    for q, name in ((0.5, "p50Ms"), (0.95, "p95Ms"), (0.99, "p99Ms")):
        assert close_to(totals[name], exact_percentile(durations, q)), name
    slow = [e["durationMs"] for e in sent if e["jobId"] == "slow"]
    assert one["jobId"] == "slow"
    assert one["totals"]["runs"] == 150
    assert close_to(one["totals"]["p95Ms"], exact_percentile(slow, 0.95))
    assert [j["jobId"] for j in summary["slowestJobs"]] == ["slow", "flaky", "fast"]
    assert [j["jobId"] for j in summary["mostFailingJobs"]] == ["flaky", "slow"]
    # Hour series: the hour before T0 is empty, T0's hour holds the runs of its first part.
    assert series["bucket"] == "hour"
    assert next(p["stats"]["runs"] for p in series["points"]) == 0
    first_minutes = [p["stats"]["runs"] for p in minutes["points"]]
    in_range = [
        e
        for e in sent
        if e["jobId"] == "flaky"
        and e["startedAt"] < iso(T0.replace(second=0) + timedelta(minutes=5))
    ]
    assert len(first_minutes) == 5
    assert sum(first_minutes) == len(in_range)
    assert too_long.status_code == 400


def test_next_run_follows_the_time_zone_across_dst() -> None:
    job = JobDefinition(id="j", name="J", schedule="0 9 * * *", timezone="Europe/Paris")
    # Paris moves from UTC+1 to UTC+2 on 2025-03-30 at 02:00 local.
    before = next_run(job, after=datetime(2025, 3, 29, 12, 0, tzinfo=UTC))
    after = next_run(job, after=datetime(2025, 3, 30, 12, 0, tzinfo=UTC))
    assert before == datetime(2025, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST, the day of the change
    assert after == datetime(2025, 3, 31, 7, 0, tzinfo=UTC)
    winter = next_run(job, after=datetime(2025, 3, 28, 12, 0, tzinfo=UTC))
    assert winter == datetime(2025, 3, 29, 8, 0, tzinfo=UTC)  # 09:00 CET
    # Autumn: 01:30 local happens twice in New York on 2025-11-02; the run happens once.
    ny = JobDefinition(id="n", name="N", schedule="30 1 * * *", timezone="America/New_York")
    first = next_run(ny, after=datetime(2025, 11, 2, 4, 0, tzinfo=UTC))
    assert first is not None
    second = next_run(ny, after=first)
    assert second is not None
    assert second - first >= timedelta(hours=24)
    once = JobDefinition(id="o", name="O", run_mode="once", run_at="2030-01-01T00:00:00Z")
    assert next_run(once, after=datetime(2025, 1, 1, tzinfo=UTC)) == datetime(
        2030, 1, 1, tzinfo=UTC
    )
    assert (
        next_run(once, after=datetime(2025, 1, 1, tzinfo=UTC), last_run=datetime.now(UTC)) is None
    )
    every = JobDefinition(id="i", name="I", interval_seconds=60)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert next_run(
        every, after=start + timedelta(seconds=150), last_run=start
    ) == start + timedelta(seconds=180)


async def test_every_read_route_is_tenant_scoped(server: LiveServer) -> None:
    alice = await server.new_tenant("alice@example.com")
    bob = await server.new_tenant("bob@example.com")
    async with server.client(alice) as a, server.client(bob) as b:
        await a.post(REGISTER, json={"jobs": [{"id": "etl", "name": "ETL", "schedule": "@daily"}]})
        await a.post(BATCH, json={"executions": [run(1, "etl", jobVersion="1"), run(2, "etl")]})
        await b.post(BATCH, json={"executions": [run(3, "other")]})
        assert [j["id"] for j in (await b.get("/api/jobs")).json()] == ["other"]
        assert (await b.get("/api/jobs/etl")).status_code == 404
        assert (await b.get("/api/jobs/etl/versions")).status_code == 404
        assert (await b.get("/api/jobs/etl/executions")).json() == []
        assert [e["execId"] for e in await pages(b)] == ["other:3"]
        assert [e["execId"] for e in await pages(b, jobId="etl")] == []
        assert (await b.get("/api/executions/etl:1")).status_code == 404
        summary = (await b.get("/api/analytics/summary")).json()
        assert summary["totals"]["runs"] == 1
        assert [j["jobId"] for j in summary["slowestJobs"]] == ["other"]
        job_summary = (await b.get("/api/analytics/summary", params={"jobId": "etl"})).json()
        assert job_summary["totals"]["runs"] == 0
        series = (await b.get("/api/analytics/timeseries", params={"jobId": "etl"})).json()
        assert sum(p["stats"]["runs"] for p in series["points"]) == 0
        metrics = (await b.get("/api/metrics", params={"jobId": "etl"})).json()
        assert metrics == []
        # Alice sees hers, and every route refuses a missing key.
        assert (await a.get("/api/jobs/etl")).json()["stats"]["runs"] == 2
        async with server.client() as anonymous:
            for path in (
                "/api/jobs",
                "/api/jobs/etl",
                "/api/executions",
                "/api/executions/x",
                "/api/analytics/summary",
                "/api/analytics/timeseries",
                "/api/jobs/etl/versions",
                "/api/stream/executions",
            ):
                assert (await anonymous.get(path)).status_code == 401, path
