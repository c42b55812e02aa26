"""Ingestion throughput of one server process, on both stores, against a raw ceiling.

    .venv/bin/python benchmarks/ingest.py [--redis-url redis://127.0.0.1:6379/0]

For each store (embedded SQLite; Redis for telemetry) it starts `chronos server` as a
subprocess, sends batches of 100 and of 1,000 executions over HTTP from this process, and
prints events/s. In the same run it measures the raw ceiling: the same writes done directly,
with a redis-py pipeline per batch and with SQLite `executemany` per batch, and prints the
ratio. It ends with the Redis memory per stored execution (`MEMORY USAGE`). Bounded: well
under two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
from _server import Server

CONCURRENCY = {100: 8, 1_000: 4}
EVENTS = {100: 30_000, 1_000: 60_000}
JOBS = 20
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def make_event(run: str, i: int) -> dict[str, object]:
    started = START + timedelta(milliseconds=i)
    duration = 50 + (i * 7919) % 5_000
    return {
        "execId": f"{run}:{i}",
        "jobId": f"job-{i % JOBS}",
        "status": "success" if i % 20 else "failed",
        "startedAt": _iso(started),
        "finishedAt": _iso(started + timedelta(milliseconds=duration)),
        "durationMs": duration,
        "exitCode": 0 if i % 20 else 1,
        "attempt": 1,
        "jobVersion": "1.4.0",
        "appVersion": "2.0.1",
    }


def make_bodies(run: str, batch: int, total: int) -> list[bytes]:
    events = [make_event(run, i) for i in range(total)]
    return [
        json.dumps({"executions": events[i : i + batch]}).encode() for i in range(0, total, batch)
    ]


async def send_all(server: Server, bodies: list[bytes], concurrency: int) -> float:
    queue = list(reversed(bodies))
    headers = {"x-api-key": server.key, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits) as http:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                answer = await http.post("/api/ingest/executions/batch", content=body, timeout=60)
                answer.raise_for_status()

        await http.get("/api/health")
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def http_rate(server: Server, run: str, batch: int) -> float:
    total = EVENTS[batch]
    bodies = make_bodies(run, batch, total)
    elapsed = asyncio.run(send_all(server, bodies, CONCURRENCY[batch]))
    return total / elapsed


def raw_redis_rate(url: str, prefix: str, batch: int) -> float:
    """SET + ZADD + the metrics HINCRBYs of every event, one pipeline per batch.

    Commands are built before the clock starts: this is what Redis and redis-py can do with
    these writes, without any of the server's decisions.
    """
    client = redis.Redis.from_url(url)
    total = EVENTS[batch]
    ttl = 30 * 86_400_000
    batches: list[list[tuple[object, ...]]] = []
    for i in range(0, total, batch):
        commands: list[tuple[object, ...]] = []
        for n in range(i, min(i + batch, total)):
            event = make_event("raw", n)
            payload = "F" + json.dumps(event, separators=(",", ":"))
            score = int(datetime.fromisoformat(str(event["startedAt"])).timestamp() * 1000)
            job, status = event["jobId"], event["status"]
            commands.append(("SET", f"{prefix}x:{event['execId']}", payload, "PX", ttl))
            commands.append(("ZADD", f"{prefix}j:{job}", score, event["execId"]))
            for res, width in (("m", 60), ("h", 3600), ("d", 86400)):
                bucket = score // 1000 // width * width
                for key in (f"{prefix}mj:{res}:{bucket}:{job}", f"{prefix}mt:{res}:{bucket}"):
                    commands.append(("HINCRBY", key, f"c:{status}", 1))
        batches.append(commands)
    started = time.perf_counter()
    for commands in batches:
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        pipe.execute()
    elapsed = time.perf_counter() - started
    client.close()
    return total / elapsed


def raw_sqlite_rate(directory: Path, batch: int) -> float:
    """INSERT of every event and the metrics upserts, `executemany` in one transaction per batch."""
    conn = sqlite3.connect(directory / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS executions (tenant TEXT, exec_id TEXT, job_id TEXT, "
        "final INTEGER, started_ms INTEGER, data TEXT, PRIMARY KEY (tenant, exec_id))"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS metrics (tenant TEXT, job_id TEXT, resolution TEXT, "
        "bucket INTEGER, field TEXT, value REAL, "
        "PRIMARY KEY (tenant, job_id, resolution, bucket, field)) WITHOUT ROWID"
    )
    total = EVENTS[batch]
    events = [make_event(f"raw{batch}", i) for i in range(total)]
    payloads = [json.dumps(e, separators=(",", ":")) for e in events]
    started = time.perf_counter()
    for i in range(0, total, batch):
        rows = []
        metrics: dict[tuple[str, str, int, str], float] = {}
        for event, payload in zip(events[i : i + batch], payloads[i : i + batch], strict=True):
            score = int(datetime.fromisoformat(str(event["startedAt"])).timestamp() * 1000)
            rows.append(("t", event["execId"], event["jobId"], 1, score, payload))
            for res, width in (("m", 60), ("h", 3600), ("d", 86400)):
                bucket = score // 1000 // width * width
                for job in (str(event["jobId"]), ""):
                    k = (job, res, bucket, f"c:{event['status']}")
                    metrics[k] = metrics.get(k, 0) + 1
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO executions VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.executemany(
            "INSERT INTO metrics VALUES ('t', ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
            "SET value = value + excluded.value",
            [(*k, v) for k, v in metrics.items()],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed


def redis_memory(url: str, prefix: str) -> tuple[float, float]:
    """Bytes per execution: its own key, and its share of the indexes that list it
    (per job, all runs, per status)."""
    client = redis.Redis.from_url(url)
    keys = [k for k in client.scan_iter(match=f"{prefix}{{t:*}}:x:*", count=1_000)][:500]
    per_key = sum(client.memory_usage(k, samples=0) or 0 for k in keys) / len(keys)
    indexes = [
        key
        for pattern in (":j:*", ":all", ":s:*")
        for key in client.scan_iter(match=f"{prefix}{{t:*}}{pattern}", count=1_000)
    ]
    executions = sum(
        client.zcard(k) for k in client.scan_iter(match=f"{prefix}{{t:*}}:all", count=1_000)
    )
    index_bytes = sum(client.memory_usage(k, samples=0) or 0 for k in indexes)
    client.close()
    return per_key, index_bytes / max(executions, 1)


def cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=1_000))
    for i in range(0, len(keys), 1_000):
        client.delete(*keys[i : i + 1_000])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    prefix = f"chronos-bench-{uuid.uuid4().hex[:6]}:"
    raw_prefix = f"{prefix}raw:"
    results: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base_env = {"CHRONOS_RATE_LIMIT_PER_MINUTE": "0"}
        try:
            (directory / "sqlite").mkdir()
            server = Server(directory / "sqlite", base_env)
            try:
                for batch in (100, 1_000):
                    rate = http_rate(server, f"s{batch}", batch)
                    results.append(("sqlite", batch, rate, raw_sqlite_rate(directory, batch)))
            finally:
                server.stop()

            (directory / "redis").mkdir()
            env = {
                **base_env,
                "CHRONOS_REDIS_URL": args.redis_url,
                "CHRONOS_REDIS_KEY_PREFIX": prefix,
            }
            server = Server(directory / "redis", env)
            try:
                for batch in (100, 1_000):
                    rate = http_rate(server, f"r{batch}", batch)
                    raw = raw_redis_rate(args.redis_url, f"{raw_prefix}{{t:raw{batch}}}:", batch)
                    results.append(("redis", batch, rate, raw))
                per_key, per_index = redis_memory(args.redis_url, prefix)
            finally:
                server.stop()
        finally:
            cleanup(args.redis_url, prefix)

    print(f"{'store':<8}{'batch':>7}{'events/s':>12}{'raw events/s':>15}{'ratio':>8}")
    for store, batch, rate, raw in results:
        print(f"{store:<8}{batch:>7}{rate:>12,.0f}{raw:>15,.0f}{rate / raw:>8.0%}")
    print(
        f"Redis memory per execution (no logs): {per_key:.0f} B for its key + "
        f"{per_index:.0f} B in the indexes = {per_key + per_index:.0f} B"
    )


if __name__ == "__main__":
    main()
