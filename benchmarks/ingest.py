"""Ingestion throughput of one server process, on both stores, against a raw ceiling.

    .venv/bin/python benchmarks/ingest.py [--redis-url redis://127.0.0.1:6379/0]

What is measured. For each store (embedded SQLite; Redis for telemetry) it starts `chronos
server` as a subprocess (one process, one event loop) and sends batches of 100 and of 1,000
executions to `POST /api/ingest/executions/batch` from this process, with a minimal HTTP/1.1
client (requests built before the clock starts: uncompressed JSON bodies; 8 (batches of 100)
or 4 (batches of 1,000) keep-alive connections, each sending its next request when the answer
to the last one came), every event new, every answer checked. `events/s` is events
acknowledged over wall time. Next to it: the CPU seconds the server process and this client
used during that time (from `/proc` and `process_time`), so a client that could not keep up,
or a server not busy, shows.

The raw ceiling, measured in the same run: the same writes done directly from Python, with
no HTTP, validation or per-event server work in between, everything prepared before the clock:

- Redis, `evalsha`: the store's own Lua script called with EVALSHA, one call per batch, with the
  arguments the store builds for that batch (captured by calling the store once without
  sending) and the commands packed to bytes in advance, sent on one connection with as many
  batches ahead as the HTTP client has in flight: the time is Redis running the script.
- Redis, `pipeline`: the script's main writes as plain commands, one pipeline per batch,
  packed in advance and sent the same way: the per-event SET and ZADDs, the metrics
  increments summed per key, last run, versions, index trimming. It skips the duplicate check,
  the min/max comparisons and anything the script does beyond that list, so it does less than
  the script. Replies are read with redis-py's parser (hiredis's when it is installed).
- SQLite: the execution rows and the metrics upserts with `executemany`, one transaction per
  batch, in WAL mode with `synchronous=FULL` as the store runs.

The ratio is events/s over the ceiling, the faster of the two Redis ways. For Redis it also
prints `direct`: the store's `ingest_executions` awaited in this process on validated events,
as many batches in flight as over HTTP: the script plus the store's own Python cost (building
the arguments, redis-py), without HTTP, validation or publishing. It ends with the Redis
memory per stored execution (`MEMORY USAGE`). Bounded: about a minute on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis
from _server import Server
from pydantic import TypeAdapter

from chronos_core._models import ExecutionEvent
from chronos_server.storage._codec import encode_received
from chronos_server.storage._metrics import METRICS_TTL_SECONDS, Resolution, histogram_index
from chronos_server.storage.redis import RedisTelemetryStore, tenant_prefix

CONCURRENCY = {100: 8, 1_000: 4}
EVENTS = {100: 30_000, 1_000: 60_000}
JOBS = 20
RETENTION_MS = 30 * 86_400_000
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
_EVENTS = TypeAdapter(list[ExecutionEvent])


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


def make_batches(run: str, batch: int, total: int) -> list[list[dict[str, object]]]:
    events = [make_event(run, i) for i in range(total)]
    return [events[i : i + batch] for i in range(0, total, batch)]


def make_bodies(run: str, batch: int, total: int) -> list[bytes]:
    return [
        json.dumps({"executions": events}).encode() for events in make_batches(run, batch, total)
    ]


@dataclass
class HttpRun:
    rate: float
    server_cpu: float
    client_cpu: float
    wall: float


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _post_all(port: int, requests: list[bytes], batch: int, concurrency: int) -> None:
    """Send prepared HTTP/1.1 requests on `concurrency` keep-alive connections, each waiting
    for its answer before the next, and check every answer stored the whole batch.

    A minimal client (request bytes built in advance, answers read by `Content-Length`) so
    that the load generator, which shares the machine, takes as little CPU as it can: httpx
    cost about 20 µs of this process's CPU per event on batches of 100.
    """
    queue = list(reversed(requests))
    expected = b'"ingested":%d,' % batch

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                writer.write(queue.pop())
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12]
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                answer = await reader.readexactly(length)
                if status != b"200" or expected not in answer:
                    raise RuntimeError(f"unexpected answer {status!r}: {answer[:300]!r}")
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _requests(server: Server, bodies: list[bytes]) -> list[bytes]:
    head = (
        "POST /api/ingest/executions/batch HTTP/1.1\r\n"
        f"host: 127.0.0.1:{server.port}\r\n"
        f"x-api-key: {server.key}\r\n"
        "content-type: application/json\r\n"
        "content-length: {}\r\n\r\n"
    )
    return [head.format(len(body)).encode() + body for body in bodies]


def send_all(server: Server, bodies: list[bytes], batch: int, concurrency: int) -> HttpRun:
    requests = _requests(server, bodies)
    httpx.get(server.url + "/api/health").raise_for_status()
    server_cpu = _cpu_seconds(server.process.pid)
    client_cpu = time.process_time()
    started = time.perf_counter()
    asyncio.run(_post_all(server.port, requests, batch, concurrency))
    wall = time.perf_counter() - started
    return HttpRun(
        rate=0.0,
        server_cpu=_cpu_seconds(server.process.pid) - server_cpu,
        client_cpu=time.process_time() - client_cpu,
        wall=wall,
    )


def http_rate(server: Server, run: str, batch: int) -> HttpRun:
    total = EVENTS[batch]
    bodies = make_bodies(run, batch, total)
    result = send_all(server, bodies, batch, CONCURRENCY[batch])
    result.rate = total / result.wall
    return result


def _validated(
    batches: list[list[dict[str, object]]],
) -> list[tuple[list[ExecutionEvent], list[str]]]:
    prepared = []
    for items in batches:
        events = _EVENTS.validate_python(items)
        payloads = [encode_received(item, event) for item, event in zip(items, events, strict=True)]
        prepared.append((events, payloads))
    return prepared


async def _direct_and_captured(
    url: str, key_prefix: str, batch: int
) -> tuple[float, list[tuple[Any, ...]]]:
    """Events/s of the store's `ingest_executions` awaited directly (tenant `direct`), and the
    EVALSHA commands it sends for another tenant's batches (captured, not sent)."""
    total = EVENTS[batch]
    store = RedisTelemetryStore(url, key_prefix=key_prefix, retention_seconds=RETENTION_MS / 1000)
    await store.open()
    try:
        direct = _validated(make_batches("direct", batch, total))
        queue = list(reversed(direct))

        async def worker() -> None:
            while queue:
                events, payloads = queue.pop()
                await store.ingest_executions("direct", events, payloads)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY[batch])))
        direct_rate = total / (time.perf_counter() - started)

        captured: list[tuple[Any, ...]] = []
        sizes: list[int] = []

        async def record(*command: Any) -> list[int]:
            captured.append(("EVALSHA", *command))
            return [1] * sizes[-1]

        client: Any = store.client
        client.evalsha = record  # the store's script object calls client.evalsha
        for events, payloads in _validated(make_batches("evalsha", batch, total)):
            sizes.append(len(events))
            await store.ingest_executions("evalsha", events, payloads)
        return direct_rate, captured
    finally:
        await store.close()


def _send_packed(
    client: redis.Redis, packed: Sequence[Sequence[bytes]], replies: Sequence[int], window: int
) -> float:
    """Seconds to send the prepared batches on one connection and read their replies, with up
    to `window` batches sent ahead of the replies read, so Redis never waits for this client."""
    connection = client.connection_pool.get_connection()
    pending: deque[int] = deque()
    try:
        started = time.perf_counter()
        for commands, count in zip(packed, replies, strict=True):
            if len(pending) == window:
                for _ in range(pending.popleft()):
                    connection.read_response()
            connection.send_packed_command(commands)
            pending.append(count)
        for count in pending:
            for _ in range(count):
                connection.read_response()
        return time.perf_counter() - started
    finally:
        client.connection_pool.release(connection)


def _pipeline_commands(prefix: str, events: list[dict[str, object]]) -> list[tuple[Any, ...]]:
    """What `_ingest.lua` writes for a batch of new final events, as plain commands."""
    commands: list[tuple[Any, ...]] = []
    counts: dict[str, dict[str, float]] = {}
    extremes: dict[str, tuple[float, float]] = {}
    expiry: dict[str, int] = {}
    last: dict[str, tuple[int, str, str]] = {}  # job -> started, execId, status
    versions: dict[tuple[str, str], tuple[int, int]] = {}
    statuses: set[str] = set()
    ttls = {"m": 60, "h": 3_600, "d": 86_400}
    metric_ttls = {
        "m": METRICS_TTL_SECONDS[Resolution.MINUTE],
        "h": METRICS_TTL_SECONDS[Resolution.HOUR],
        "d": METRICS_TTL_SECONDS[Resolution.DAY],
    }
    for event in events:
        exec_id, job, status = str(event["execId"]), str(event["jobId"]), str(event["status"])
        started = int(datetime.fromisoformat(str(event["startedAt"])).timestamp() * 1000)
        duration = float(event["durationMs"])  # type: ignore[arg-type]
        payload = "F" + json.dumps(event, separators=(",", ":"))
        commands.append(("SET", f"{prefix}x:{exec_id}", payload, "PX", RETENTION_MS))
        commands.append(("ZADD", f"{prefix}j:{job}", started, exec_id))
        commands.append(("ZADD", f"{prefix}all", started, exec_id))
        commands.append(("ZADD", f"{prefix}s:{status}", started, exec_id))
        statuses.add(status)
        if job not in last or (started, exec_id) > last[job][:2]:
            last[job] = (started, exec_id, status)
        version = str(event["jobVersion"])
        keys = [f"{prefix}mv:{job}:{version}"]
        expiry[keys[0]] = RETENTION_MS // 1000
        seconds = started // 1000
        for res, width in ttls.items():
            bucket = seconds - seconds % width
            for key in (f"{prefix}mj:{res}:{bucket}:{job}", f"{prefix}mt:{res}:{bucket}"):
                keys.append(key)
                expiry[key] = metric_ttls[res]
        for key in keys:
            fields = counts.setdefault(key, {})
            for name, value in (
                (f"c:{status}", 1.0),
                ("dn", 1.0),
                ("ds", duration),
                (f"h:{histogram_index(duration)}", 1.0),
            ):
                fields[name] = fields.get(name, 0.0) + value
            low, high = extremes.get(key, (duration, duration))
            extremes[key] = (min(low, duration), max(high, duration))
        first, latest = versions.get((job, version), (started, started))
        versions[(job, version)] = (min(first, started), max(latest, started))
    for key, fields in counts.items():
        for name, value in fields.items():
            if name == "ds":
                commands.append(("HINCRBYFLOAT", key, name, repr(value)))
            else:
                commands.append(("HINCRBY", key, name, int(value)))
        low, high = extremes[key]
        commands.append(("HSET", key, "dmin", repr(low), "dmax", repr(high)))
        commands.append(("EXPIRE", key, expiry[key]))
    for (job, version), (first, latest) in versions.items():
        commands.append(("HSET", f"{prefix}mv:{job}:{version}", "first", first, "last", latest))
        commands.append(("SADD", f"{prefix}vs:{job}", version))
        commands.append(("PEXPIRE", f"{prefix}vs:{job}", RETENTION_MS))
    for job, (started, exec_id, status) in last.items():
        commands.append(("HSET", f"{prefix}last", job, f"{started}|{status}|{exec_id}"))
    horizon = f"({int(time.time() * 1000) - RETENTION_MS}"
    indexes = [f"{prefix}j:{job}" for job in last] + [f"{prefix}all"]
    indexes += [f"{prefix}s:{status}" for status in statuses]
    for index in indexes:
        commands.append(("ZREMRANGEBYSCORE", index, "-inf", horizon))
        commands.append(("PEXPIRE", index, RETENTION_MS))
    return commands


@dataclass
class RedisCeiling:
    direct: float
    evalsha: float
    pipeline: float

    @property
    def best(self) -> float:
        return max(self.evalsha, self.pipeline)


def raw_redis_rates(url: str, key_prefix: str, batch: int) -> RedisCeiling:
    """The store called directly, and the two raw ceilings (see the module docstring)."""
    total = EVENTS[batch]
    direct, captured = asyncio.run(_direct_and_captured(url, key_prefix, batch))
    client = redis.Redis.from_url(url)
    try:
        connection = client.connection_pool.get_connection()
        packed = [connection.pack_command(*command) for command in captured]
        client.connection_pool.release(connection)
        window = CONCURRENCY[batch]
        evalsha = total / _send_packed(client, packed, [1] * len(packed), window)
        stored = client.zcard(tenant_prefix(key_prefix, "evalsha") + "all")
        if stored != total:
            raise RuntimeError(f"the EVALSHA ceiling stored {stored} of {total} executions")

        prefix = tenant_prefix(key_prefix, "pipeline")
        batches = [
            _pipeline_commands(prefix, items) for items in make_batches("pipe", batch, total)
        ]
        connection = client.connection_pool.get_connection()
        packed = [connection.pack_commands(commands) for commands in batches]
        client.connection_pool.release(connection)
        pipeline = total / _send_packed(client, packed, [len(c) for c in batches], window)
    finally:
        client.close()
    return RedisCeiling(direct=direct, evalsha=evalsha, pipeline=pipeline)


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
    runs: list[tuple[str, int, HttpRun, float]] = []
    ceilings: dict[int, RedisCeiling] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base_env = {"CHRONOS_RATE_LIMIT_PER_MINUTE": "0"}
        try:
            (directory / "sqlite").mkdir()
            server = Server(directory / "sqlite", base_env)
            try:
                for batch in (100, 1_000):
                    run = http_rate(server, f"s{batch}", batch)
                    runs.append(("sqlite", batch, run, raw_sqlite_rate(directory, batch)))
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
                    run = http_rate(server, f"r{batch}", batch)
                    ceilings[batch] = raw_redis_rates(args.redis_url, f"{prefix}raw{batch}:", batch)
                    runs.append(("redis", batch, run, ceilings[batch].best))
                per_key, per_index = redis_memory(args.redis_url, prefix)
            finally:
                server.stop()
        finally:
            cleanup(args.redis_url, prefix)

    print(
        f"{'store':<8}{'batch':>6}{'events/s':>10}{'ceiling':>10}{'ratio':>7}"
        f"{'server CPU':>12}{'client CPU':>12}"
    )
    for store, batch, run, best in runs:
        print(
            f"{store:<8}{batch:>6}{run.rate:>10,.0f}{best:>10,.0f}{run.rate / best:>7.0%}"
            f"{run.server_cpu / run.wall:>12.0%}{run.client_cpu / run.wall:>12.0%}"
        )
    print("Redis, events/s without HTTP:")
    print(f"{'batch':>6}{'direct':>10}{'evalsha':>10}{'pipeline':>10}")
    for batch, raw in ceilings.items():
        print(f"{batch:>6}{raw.direct:>10,.0f}{raw.evalsha:>10,.0f}{raw.pipeline:>10,.0f}")
    print(
        f"Redis memory per execution (no logs): {per_key:.0f} B for its key + "
        f"{per_index:.0f} B in the indexes = {per_key + per_index:.0f} B"
    )


if __name__ == "__main__":
    main()
