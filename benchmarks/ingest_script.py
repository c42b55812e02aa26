"""Redis time of the store's ingest script alone, per batch (1,000 events, or `--batch-size`).

    flock /tmp/chronos-bench.lock .venv/bin/python benchmarks/ingest_script.py \
        [--redis-url redis://127.0.0.1:6379/0] [--batches 30] [--jobs 200] [--batch-size 1000]
        [--also FILE]

Every batch is new events (1,000 by default, spread over `--jobs` jobs, one version each, 5 %
failed, started 20 ms apart from 30 minutes ago, so a batch touches one or two minute buckets),
with the KEYS and ARGV the store builds for it (`RedisTelemetryStore.ingest_arguments`), prepared
before the clock; the rolling summaries of every job and the tenant exist, as after a read.
Each call is timed from send to reply on one connection (nothing else in flight).

The baseline of the same run: an EVALSHA of a script that returns at once, with the same KEYS
and ARGV, so what is left over is the script's own work. Printed: median and mean ms per call
of both, their difference per event, and the Redis-side time of the calls from
`INFO commandstats` (EVALSHA usec, which includes the commands the script calls; only
meaningful while nothing else runs scripts on that Redis). `--also FILE` measures another
version of the script in the same run, on a tenant of its own, e.g. the committed one:
`git show HEAD:chronos_server/storage/_ingest.lua > /tmp/before.lua`; then the scripts are
also run batch by batch in turn, on fresh tenants, and the median of the per-batch time ratios
is printed (less sensitive to a machine whose load changes). Keys are deleted at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from chronos_core._models import ExecutionEvent
from chronos_server.storage._codec import encode_event
from chronos_server.storage._metrics import ROLLING_HOURS, Resolution, bucket_start
from chronos_server.storage.redis import _INGEST_LUA, RedisTelemetryStore, tenant_prefix

BATCH = 1_000
"""Events per batch by default (`--batch-size 100` is the SDK's default batch)."""
TRIVIAL_LUA = "return 1"


def make_events(run: str, jobs: int, first: int, count: int) -> list[ExecutionEvent]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    events = []
    for i in range(first, first + count):
        started = start + timedelta(milliseconds=20 * i)
        duration = 50 + (i * 7919) % 5_000
        events.append(
            ExecutionEvent.model_validate(
                {
                    "execId": f"{run}:{i}",
                    "jobId": f"job-{i % jobs}",
                    "status": "success" if i % 20 else "failed",
                    "startedAt": started,
                    "finishedAt": started + timedelta(milliseconds=duration),
                    "durationMs": duration,
                    "exitCode": 0 if i % 20 else 1,
                    "attempt": 1,
                    "jobVersion": "1.4.0",
                }
            )
        )
    return events


def evalsha_usec(client: redis.Redis) -> tuple[int, int]:
    stats: Any = client.info("commandstats")
    found = stats.get("cmdstat_evalsha", {})
    return int(found.get("calls", 0)), int(found.get("usec", 0))


def timed(
    client: redis.Redis, sha: str, calls: list[tuple[list[str], list[Any]]]
) -> tuple[list[float], float]:
    """Wall ms of each call, and Redis-side ms per call (commandstats)."""
    before = evalsha_usec(client)
    times = []
    for keys, args in calls:
        began = time.perf_counter()
        client.evalsha(sha, len(keys), *keys, *args)
        times.append((time.perf_counter() - began) * 1000)
    after = evalsha_usec(client)
    n = after[0] - before[0]
    return times, (after[1] - before[1]) / 1000 / max(n, 1)


def interleaved(
    client: redis.Redis,
    scripts: list[tuple[str, str]],
    calls: list[list[tuple[list[str], list[Any]]]],
) -> None:
    """The scripts batch by batch in turn (the order rotating), each on its own tenant, so a
    machine whose load changes during the run slows them alike: the median of the per-batch
    ratios to the first script."""
    shas = [client.script_load(source) for _, source in scripts]
    times: list[list[float]] = [[] for _ in scripts]
    for b in range(len(calls[0])):
        for k in range(len(scripts)):
            j = (b + k) % len(scripts)
            keys, args = calls[j][b]
            began = time.perf_counter()
            client.evalsha(shas[j], len(keys), *keys, *args)
            times[j].append((time.perf_counter() - began) * 1000)
    print("  interleaved, batch by batch:")
    for j, (name, _) in enumerate(scripts):
        ratio = statistics.median(t / f for t, f in zip(times[j], times[0], strict=True))
        print(
            f"    {name}: median {statistics.median(times[j]):.2f} ms per batch; "
            f"median ratio to {scripts[0][0]} {ratio:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="FILE",
        help="another version of the script to measure in the same run (e.g. from git show)",
    )
    options = parser.parse_args()
    size = options.batch_size

    key_prefix = f"chronos-bench-{uuid.uuid4().hex[:8]}:"
    store = RedisTelemetryStore(options.redis_url, key_prefix=key_prefix)
    client = redis.Redis.from_url(options.redis_url)
    hour = Resolution.HOUR.seconds
    first_hour = bucket_start(time.time(), Resolution.HOUR) - (ROLLING_HOURS - 1) * hour
    try:
        trivial = client.script_load(TRIVIAL_LUA)
        scripts = [("ingest script", _INGEST_LUA)]
        scripts += [(path, Path(path).read_text()) for path in options.also]
        print(f"{options.batches} batches of {size} events, {options.jobs} jobs")

        def prepare(label: str) -> list[tuple[list[str], list[Any]]]:
            """The calls of every batch, on new executions of a tenant of their own."""
            tenant = f"bench-{label}-{uuid.uuid4().hex[:6]}"
            prefix = tenant_prefix(key_prefix, tenant)
            # Rolling summaries in place, as after the jobs list was read this hour.
            for job in range(options.jobs):
                client.hset(f"{prefix}r:job-{job}", "from", first_hour)
            client.hset(prefix + "rt", "from", first_hour)
            calls = []
            for b in range(options.batches):
                events = make_events("run", options.jobs, b * size, size)
                payloads = [encode_event(e) for e in events]
                calls.append(store.ingest_arguments(tenant, events, payloads))
            return calls

        for index, (name, source) in enumerate(scripts):
            # Each script on new executions of its own tenant, after its own baseline.
            calls = prepare(str(index))
            base, base_redis = timed(client, trivial, calls)
            work, work_redis = timed(client, client.script_load(source), calls)
            base_ms, work_ms = statistics.median(base), statistics.median(work)
            print(
                f"  baseline (trivial script, same ARGV): median {base_ms:.2f} ms, "
                f"redis {base_redis:.2f} ms per call"
            )
            print(
                f"  {name}: median {work_ms:.2f} ms, mean {statistics.mean(work):.2f} ms, "
                f"redis {work_redis:.2f} ms per batch; minus baseline "
                f"{(work_ms - base_ms) * 1000 / size:.1f} us per event; "
                f"ratio {work_ms / base_ms:.1f}x baseline"
            )
        if len(scripts) > 1:
            interleaved(client, scripts, [prepare(f"i{i}") for i in range(len(scripts))])
    finally:
        keys = list(client.scan_iter(match=key_prefix + "*", count=1_000))
        for i in range(0, len(keys), 1_000):
            client.unlink(*keys[i : i + 1_000])
        client.close()


if __name__ == "__main__":
    main()
