"""Read API latency with a large store, on both stores.

    .venv/bin/python benchmarks/read_api.py [--executions 1000000] [--jobs 200]
                                            [--requests 200] [--redis-url redis://...]

For each store (embedded SQLite; Redis for telemetry) it starts `chronos server` as a
subprocess, loads `--executions` runs over `--jobs` jobs (spread over the last 7 days, 5 %
failed, two versions per job) directly through the store's `ingest_executions` in batches of
5,000, then times over HTTP, sequentially, from this process:

    jobs list            GET /api/jobs                       (200 summaries, 24 h stats)
    executions page      GET /api/executions?limit=50        (first page)
    executions deep      the same, 20 pages in, by cursor
    failed page          GET /api/executions?status=failed&limit=50
    job page             GET /api/executions?jobId=...&limit=50
    analytics summary    GET /api/analytics/summary          (24 h, rankings of 200 jobs)
    ... past             the two above for a 24 h window that ended hours ago, another one for
                         each request (not the rolling window, none served by the server's
                         2-second cache of past windows: a merge of hour and day buckets)
    ... past cached      the same past window each time (served by that cache)

The default 24 h window ends now; the server computes it afresh for every request (it is
never cached), so the first two timed rows are what any request costs. `jobs list first` is
one sample: the very first request after loading, which builds Redis's rolling summaries.
Each row is printed with p50/p95 in ms, next to the p50 of `GET /api/health` measured in the
same run (the cost of one HTTP round trip through the framework). Target: p95 <= 50 ms on Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import redis
from _server import Server as ServerProcess

from chronos_core._models import ExecutionEvent, ExecutionStatus, format_timestamp
from chronos_server.storage.redis import RedisTelemetryStore
from chronos_server.storage.sqlite import SQLiteStore

BATCH = 5_000
SPREAD = timedelta(days=7)
NOW = datetime.now(UTC).replace(microsecond=0)


class Server(ServerProcess):
    """The server subprocess, and its one tenant (read from the embedded store's file)."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        super().__init__(directory, env)
        with sqlite3.connect(directory / "chronos.db") as conn:
            self.tenant = conn.execute("SELECT id FROM users").fetchone()[0]


@dataclass(slots=True)
class _Event:
    """The fields `ingest_executions` reads of an `ExecutionEvent` (the JSON is passed as
    payload): a million pydantic models would take minutes to build, these take seconds."""

    exec_id: str
    job_id: str
    status: ExecutionStatus
    started_at: datetime
    duration_ms: float
    job_version: str


def make_batches(total: int, jobs: int) -> list[tuple[list[ExecutionEvent], list[str]]]:
    """Events (valid by construction, so not validated) and their JSON."""
    rng = random.Random(42)
    encoder = msgspec.json.Encoder()
    start = NOW - SPREAD
    step = SPREAD / total
    batches = []
    for first in range(0, total, BATCH):
        events, payloads = [], []
        for i in range(first, min(first + BATCH, total)):
            job = f"job-{rng.randrange(jobs):03d}"
            started = start + step * i
            duration = float(int(rng.lognormvariate(6, 1)) + 1)
            status = ExecutionStatus.FAILED if rng.random() < 0.05 else ExecutionStatus.SUCCESS
            version = "1.1" if i > total * 0.8 else "1.0"
            exec_id = f"{job}:{i}"
            events.append(
                cast(ExecutionEvent, _Event(exec_id, job, status, started, duration, version))
            )
            payloads.append(
                encoder.encode(
                    {
                        "execId": exec_id,
                        "jobId": job,
                        "status": status.value,
                        "startedAt": format_timestamp(started),
                        "finishedAt": format_timestamp(started + timedelta(milliseconds=duration)),
                        "durationMs": duration,
                        "exitCode": 0 if status is ExecutionStatus.SUCCESS else 1,
                        "jobVersion": version,
                        "appVersion": "2.0.1",
                    }
                ).decode()
            )
        batches.append((events, payloads))
    return batches


async def load(
    store: Any, tenant: str, batches: list[tuple[list[ExecutionEvent], list[str]]]
) -> float:
    await store.open()
    started = time.perf_counter()
    try:
        for events, payloads in batches:
            await store.ingest_executions(tenant, events, payloads)
    finally:
        await store.close()
    return time.perf_counter() - started


def register(server: Server, jobs: int) -> None:
    body = {
        "jobs": [
            {
                "id": f"job-{i:03d}",
                "name": f"Job {i}",
                "schedule": f"{i % 60} * * * *",
                "timezone": "Europe/Paris",
                "version": "1.1",
            }
            for i in range(jobs)
        ]
    }
    httpx.post(
        server.url + "/api/ingest/jobs/register", json=body, headers={"x-api-key": server.key}
    ).raise_for_status()


def timed(
    http: httpx.Client, path: str, params: dict[str, Any], count: int, past: bool = False
) -> list[float]:
    """Latencies in ms. `past`: each request asks for another 24 h window, ending one more
    hour before now each time, so none is the rolling window or a cached one."""
    for _ in range(5):
        http.get(path, params=params).raise_for_status()
    samples = []
    for i in range(count):
        if past:
            params = window(NOW - timedelta(hours=i + 2))
        started = time.perf_counter()
        http.get(path, params=params).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def window(until: datetime) -> dict[str, str]:
    return {
        "since": format_timestamp(until - timedelta(hours=24)),
        "until": format_timestamp(until),
    }


def measure(server: Server, count: int) -> dict[str, list[float]]:
    with httpx.Client(base_url=server.url, headers={"x-api-key": server.key}, timeout=60) as http:
        started = time.perf_counter()
        http.get("/api/jobs").raise_for_status()
        first = [(time.perf_counter() - started) * 1000]
        cursor = None
        for _ in range(20):
            page = http.get(
                "/api/executions", params={"limit": 50, **({"cursor": cursor} if cursor else {})}
            ).json()
            cursor = page["nextCursor"]
        yesterday = window(NOW - timedelta(hours=30))
        few = min(count, 100)
        return {
            "health (baseline)": timed(http, "/api/health", {}, count),
            "jobs list first": first,
            "jobs list": timed(http, "/api/jobs", {}, count),
            "executions page": timed(http, "/api/executions", {"limit": 50}, count),
            "executions deep": timed(
                http, "/api/executions", {"limit": 50, "cursor": cursor}, count
            ),
            "failed page": timed(http, "/api/executions", {"limit": 50, "status": "failed"}, count),
            "job page": timed(http, "/api/executions", {"limit": 50, "jobId": "job-007"}, count),
            "analytics summary": timed(http, "/api/analytics/summary", {}, count),
            "jobs list past": timed(http, "/api/jobs", {}, few, past=True),
            "analytics past": timed(http, "/api/analytics/summary", {}, few, past=True),
            "jobs list past cached": timed(http, "/api/jobs", yesterday, count),
        }


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(store: str, results: dict[str, list[float]]) -> None:
    base = statistics.median(results["health (baseline)"])
    for name, samples in results.items():
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        print(f"{store:<7} {name:<20} {p50:>8.1f} {p95:>8.1f} {p50 / base:>9.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--stores", default="redis,sqlite")
    args = parser.parse_args()

    built = time.perf_counter()
    batches = make_batches(args.executions, args.jobs)
    print(
        f"built {args.executions:,} executions over {args.jobs} jobs "
        f"in {time.perf_counter() - built:.0f} s"
    )
    print(f"{'store':<7} {'endpoint':<20} {'p50 ms':>8} {'p95 ms':>8} {'vs health':>10}")
    for store_name in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            prefix = f"chronos-bench-{uuid.uuid4().hex[:8]}:"
            env = {}
            if store_name == "redis":
                env = {"CHRONOS_REDIS_URL": args.redis_url, "CHRONOS_REDIS_KEY_PREFIX": prefix}
            server = Server(directory, env)
            try:
                register(server, args.jobs)
                store: Any
                if store_name == "redis":
                    store = RedisTelemetryStore(args.redis_url, key_prefix=prefix)
                else:
                    store = SQLiteStore(directory / "chronos.db")
                seconds = asyncio.run(load(store, server.tenant, batches))
                print(
                    f"{store_name:<7} loaded in {seconds:.0f} s "
                    f"({args.executions / seconds:,.0f} executions/s through ingest_executions)"
                )
                report(store_name, measure(server, args.requests))
            finally:
                server.stop()
                if store_name == "redis":
                    client = redis.Redis.from_url(args.redis_url)
                    keys = list(client.scan_iter(match=prefix + "*", count=5_000))
                    for i in range(0, len(keys), 5_000):
                        client.delete(*keys[i : i + 5_000])
                    client.close()


if __name__ == "__main__":
    main()
