"""One suite, every store: SQLite (embedded) and Redis + PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import redis

from chronos_core._models import ExecutionEvent, ExecutionStatus, JobDefinition
from chronos_server.errors import Conflict
from chronos_server.storage import (
    TENANT_SCOPE,
    ApiKeyRecord,
    ExecutionQuery,
    MetricsBucket,
    Resolution,
    Stores,
)
from chronos_server.storage._metrics import bucket_start, histogram_index
from chronos_server.storage.redis import RedisTelemetryStore, tenant_prefix

from .conftest import REDIS_URL

NOW = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)


def run(exec_id: str, job_id: str = "job-1", **fields: object) -> ExecutionEvent:
    values: dict[str, object] = {
        "exec_id": exec_id,
        "job_id": job_id,
        "status": ExecutionStatus.SUCCESS,
        "started_at": NOW,
        "duration_ms": 100.0,
    }
    values.update(fields)
    return ExecutionEvent.model_validate(values)


def tenant() -> str:
    return uuid.uuid4().hex[:12]


async def test_jobs_upsert_get_list(stores: Stores) -> None:
    t = tenant()
    store = stores.telemetry
    first = JobDefinition(id="b", name="B", schedule="* * * * *")
    assert await store.upsert_jobs(t, [first, JobDefinition(id="a", name="A", schedule="@daily")])
    await store.upsert_jobs(t, [first.model_copy(update={"name": "B2"})])
    assert [job.id for job in await store.list_jobs(t)] == ["a", "b"]
    assert (await store.get_job(t, "b")).name == "B2"  # type: ignore[union-attr]
    assert await store.get_job(t, "missing") is None
    assert await store.list_jobs(tenant()) == []


async def test_ingest_is_idempotent_and_round_trips(stores: Stores) -> None:
    t = tenant()
    store = stores.telemetry
    full = run(
        "x1",
        labels=["a", "b"],
        metadata={"k": [1, 2]},
        error_message="boom",
        status=ExecutionStatus.FAILED,
        finished_at=NOW + timedelta(seconds=1),
        stdout="out",
        attempt=2,
    )
    outcome = await store.ingest_executions(t, [full, run("x2"), run("x2")])
    assert [e.exec_id for e in outcome.stored] == ["x1", "x2"]
    assert outcome.duplicates == 1
    again = await store.ingest_executions(t, [full])
    assert (again.stored, again.duplicates) == ([], 1)
    assert await store.get_execution(t, "x1") == full
    assert await store.get_execution(tenant(), "x1") is None


async def test_running_then_final_is_one_execution_counted_once(stores: Stores) -> None:
    t = tenant()
    store = stores.telemetry
    running = run("r1", status=ExecutionStatus.RUNNING, duration_ms=None)
    final = run("r1", status=ExecutionStatus.TIMEOUT, duration_ms=5_000.0)
    assert len((await store.ingest_executions(t, [running])).stored) == 1
    assert len((await store.ingest_executions(t, [final])).stored) == 1
    assert (await store.ingest_executions(t, [running, final])).duplicates == 2
    assert (await store.get_execution(t, "r1")).status is ExecutionStatus.TIMEOUT  # type: ignore[union-attr]
    assert [e.exec_id for e in await store.list_executions(t, "job-1")] == ["r1"]
    buckets = await store.metrics(t, "job-1", Resolution.MINUTE, NOW, NOW)
    assert [b.counts for b in buckets] == [{"timeout": 1}]
    # Both in one batch: listed under its final status only.
    pair = [
        run("r2", status=ExecutionStatus.RUNNING, duration_ms=None),
        run("r2", status=ExecutionStatus.FAILED),
    ]
    assert len((await store.ingest_executions(t, pair)).stored) == 2
    running = ExecutionQuery(statuses=(ExecutionStatus.RUNNING,))
    assert (await store.query_executions(t, running)).items == []
    failed = ExecutionQuery(statuses=(ExecutionStatus.FAILED,))
    assert [e.exec_id for e in (await store.query_executions(t, failed)).items] == ["r2"]


async def test_concurrent_copies_of_a_batch_store_once(stores: Stores) -> None:
    t = tenant()
    batch = [run(f"c{i}", duration_ms=float(i)) for i in range(300)]
    outcomes = await asyncio.gather(
        *(stores.telemetry.ingest_executions(t, batch) for _ in range(6))
    )
    assert sum(len(o.stored) for o in outcomes) == 300
    assert sum(o.duplicates for o in outcomes) == 5 * 300
    [bucket] = await stores.telemetry.metrics(t, None, Resolution.DAY, NOW - timedelta(days=1), NOW)
    assert bucket.total == 300
    assert bucket.duration_sum == sum(range(300))


async def test_list_executions_newest_first_with_limit(stores: Stores) -> None:
    t = tenant()
    events = [run(f"l{i}", started_at=NOW + timedelta(seconds=i)) for i in range(10)]
    await stores.telemetry.ingest_executions(t, events)
    await stores.telemetry.ingest_executions(t, [run("other", job_id="job-2")])
    listed = await stores.telemetry.list_executions(t, "job-1", limit=3)
    assert [e.exec_id for e in listed] == ["l9", "l8", "l7"]


async def test_metrics_by_status_duration_and_percentiles(stores: Stores) -> None:
    t = tenant()
    rng = random.Random(7)
    durations = [rng.lognormvariate(5, 1.2) for _ in range(2_000)]
    statuses = [ExecutionStatus.SUCCESS] * 1_900 + [ExecutionStatus.FAILED] * 100
    events = [
        run(f"m{i}", duration_ms=d, status=s)
        for i, (d, s) in enumerate(zip(durations, statuses, strict=True))
    ]
    for i in range(0, len(events), 500):
        await stores.telemetry.ingest_executions(t, events[i : i + 500])
    await stores.telemetry.ingest_executions(t, [run("nodur", duration_ms=None)])
    for resolution in Resolution:
        for job in ("job-1", None):
            [bucket] = await stores.telemetry.metrics(
                t, job, resolution, NOW - timedelta(days=1), NOW + timedelta(minutes=1)
            )
            assert bucket.counts == {"success": 1_901, "failed": 100}
            assert bucket.duration_count == 2_000
            assert bucket.duration_sum == pytest.approx(sum(durations))
            assert bucket.duration_min == pytest.approx(min(durations))
            assert bucket.duration_max == pytest.approx(max(durations))
            ordered = sorted(durations)
            for q in (0.5, 0.95, 0.99):
                exact = ordered[int(q * len(ordered)) - 1]
                assert bucket.percentile(q) == pytest.approx(exact, rel=0.035)


async def test_metrics_buckets_split_by_time(stores: Stores) -> None:
    t = tenant()
    events = [run(f"t{i}", started_at=NOW - timedelta(minutes=i)) for i in range(3)]
    await stores.telemetry.ingest_executions(t, events)
    minutes = await stores.telemetry.metrics(
        t, "job-1", Resolution.MINUTE, NOW - timedelta(minutes=5), NOW
    )
    assert [b.total for b in minutes] == [1, 1, 1]
    assert [b.start for b in minutes] == sorted(b.start for b in minutes)


async def test_retention_purge(stores: Stores) -> None:
    t = tenant()
    await stores.telemetry.ingest_executions(t, [run("old"), run("new", started_at=NOW)])
    later = NOW + timedelta(days=30, hours=1)
    await stores.telemetry.purge_expired(later)
    assert await stores.telemetry.list_executions(t, "job-1") == []


STATUSES = [ExecutionStatus.SUCCESS] * 3 + [ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT]


def spread(
    rng: random.Random, first: int, count: int, around: datetime, hours: tuple[float, float]
) -> list[ExecutionEvent]:
    """Final runs of jobs a and b (a few without a duration), `hours` before/after `around`."""
    return [
        run(
            f"w{i}",
            job_id=rng.choice("ab"),
            status=rng.choice(STATUSES),
            started_at=around + timedelta(hours=rng.uniform(*hours)),
            duration_ms=None if i % 37 == 0 else round(rng.lognormvariate(6, 1.5), 3),
        )
        for i in range(first, first + count)
    ]


def check_window(
    stats: dict[str, MetricsBucket],
    sent: Sequence[ExecutionEvent],
    start: datetime,
    end: datetime,
) -> None:
    """`window_stats` against the runs themselves: those of the hours [start, end] touches."""
    low = bucket_start(start.timestamp(), Resolution.HOUR)
    high = bucket_start(end.timestamp(), Resolution.HOUR) + 3_600
    inside = [e for e in sent if low <= e.started_at.timestamp() < high]
    scopes: dict[str, Callable[[ExecutionEvent], bool]] = {
        TENANT_SCOPE: lambda e: True,
        "a": lambda e: e.job_id == "a",
        "b": lambda e: e.job_id == "b",
    }
    assert "idle" not in stats
    for scope, keep in scopes.items():
        runs = [e for e in inside if keep(e)]
        assert runs, "the test's window should hold runs of every scope"
        bucket = stats[scope]
        durations = [e.duration_ms for e in runs if e.duration_ms is not None]
        assert bucket.counts == Counter(e.status.value for e in runs), scope
        assert bucket.duration_count == len(durations)
        assert bucket.duration_sum == pytest.approx(sum(durations))
        assert bucket.duration_min == pytest.approx(min(durations))
        assert bucket.duration_max == pytest.approx(max(durations))
        assert bucket.histogram == Counter(histogram_index(d) for d in durations)
        ordered = sorted(durations)
        for q in (0.5, 0.95, 0.99):
            exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
            estimate = bucket.percentile(q)
            assert estimate is not None
            assert abs(estimate - exact) <= exact / 32 + 1e-9, (scope, q)


async def test_window_stats_match_the_stored_runs(stores: Stores) -> None:
    t = tenant()
    store = stores.telemetry
    rng = random.Random(5)
    now = datetime.now(UTC)
    start = now - timedelta(hours=24)
    sent = spread(rng, 0, 700, now, (-30, 0))  # over 500 index entries: several ZADDs
    await store.ingest_executions(t, sent)
    scopes = [TENANT_SCOPE, "a", "b", "idle"]
    check_window(await store.window_stats(t, scopes, start, now), sent, start, now)
    listed = await store.query_executions(t, ExecutionQuery(limit=1_000, scan_budget=10_000))
    assert sorted(e.exec_id for e in listed.items) == sorted(e.exec_id for e in sent)
    # More runs, some arriving late: inside the window (counted), before it (not counted).
    later = spread(rng, 700, 200, now, (-30, 0))
    late = [
        run("late-in", job_id="a", started_at=start + timedelta(minutes=5), duration_ms=1.0),
        run("late-out", job_id="a", started_at=start - timedelta(hours=2), duration_ms=1e6),
    ]
    await store.ingest_executions(t, later + late)
    sent += later + late
    check_window(await store.window_stats(t, scopes, start, now), sent, start, now)
    # Any other window, e.g. a day earlier, is read from the buckets.
    earlier = (start - timedelta(hours=6), now - timedelta(hours=6))
    check_window(await store.window_stats(t, scopes, *earlier), sent, *earlier)


async def test_redis_rolling_summaries_follow_the_clock(redis_prefix: str) -> None:
    """The Redis store's 24-hour summaries, moved hour by hour, back, and rebuilt, stay equal to
    the runs they cover, while runs (early, late, in the future) keep arriving."""
    base = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)
    clock = [base]
    store = RedisTelemetryStore(
        REDIS_URL, key_prefix=redis_prefix, clock=lambda: clock[0].timestamp()
    )
    inspect = redis.Redis.from_url(REDIS_URL)
    await store.open()
    try:
        t = tenant()
        rng = random.Random(9)
        sent: list[ExecutionEvent] = []
        scopes = [TENANT_SCOPE, "a", "b", "idle"]

        async def ingest(count: int, hours: tuple[float, float]) -> None:
            batch = spread(rng, len(sent), count, clock[0], hours)
            await store.ingest_executions(t, batch)
            sent.extend(batch)

        async def check(moment: datetime) -> None:
            clock[0] = moment
            start = moment - timedelta(hours=24)
            check_window(await store.window_stats(t, scopes, start, moment), sent, start, moment)
            summary = tenant_prefix(redis_prefix, t) + "r:a"
            first_hour = bucket_start(start.timestamp(), Resolution.HOUR)
            assert inspect.hget(summary, "from") == str(first_hour).encode()

        await ingest(400, (-40, 10))
        await check(base)  # built from the hour buckets
        # A run without a duration keeps the summary's histogram alive with its hash.
        histogram = tenant_prefix(redis_prefix, t) + "rh:a"
        inspect.pexpire(histogram, 60_000)
        quiet = run("quiet", job_id="a", started_at=base, duration_ms=None)
        await store.ingest_executions(t, [quiet])
        sent.append(quiet)
        assert inspect.pttl(histogram) > 60_000
        await ingest(300, (-30, 3))  # late runs inside the window and before it, future ones
        await check(base)  # kept up to date by ingestion
        await check(base + timedelta(hours=1))  # moved by an hour
        await ingest(300, (-30, 3))
        await check(base + timedelta(hours=5, minutes=20))  # by several
        await ingest(100, (-2, 1))
        await check(base - timedelta(hours=2))  # back
        clock[0] = base + timedelta(days=3)
        await ingest(100, (-30, 1))
        await check(clock[0])  # no overlap: rebuilt
        await ingest(100, (-1, 0))
        await check(clock[0])
    finally:
        await store.close()
        inspect.close()


async def test_accounts(stores: Stores) -> None:
    accounts = stores.accounts
    user = await accounts.create_user("a@example.com", "A")
    assert await accounts.get_user(user.id) == user
    assert user in await accounts.list_users()
    record = ApiKeyRecord(
        id=uuid.uuid4().hex,
        user_id=user.id,
        prefix=uuid.uuid4().hex[:8],
        key_hash=b"\x01" * 32,
        name="ci",
        created_at=datetime.now(UTC),
        org_id="org-1",
    )
    await accounts.create_api_key(record)
    with pytest.raises(Conflict):
        await accounts.create_api_key(record)
    found = await accounts.find_api_key(record.prefix)
    assert found is not None
    assert (found.key_hash, found.org_id, found.revoked) == (record.key_hash, "org-1", False)
    when = datetime.now(UTC).replace(microsecond=0)
    await accounts.touch_api_key(record.id, when)
    assert await accounts.revoke_api_key(record.prefix, when)
    assert not await accounts.revoke_api_key(record.id, when)
    found = await accounts.find_api_key(record.prefix)
    assert found is not None
    assert found.revoked
    assert found.last_used_at == when
    assert [k.id for k in await accounts.list_api_keys(user.id)] == [record.id]


async def test_ready(stores: Stores) -> None:
    assert await stores.telemetry.ping()
    assert await stores.accounts.ping()


async def test_redis_ingest_leaves_no_key_without_ttl(redis_prefix: str) -> None:
    """Every key the Redis ingest script writes expires (but the per-job hashes, and the
    indexes, which the purge trims: see the next test): time buckets
    keep the TTL they were created with; versions and summaries have theirs renewed, by a write
    an hour or more after the last renewal (which sets the TTL an hour longer)."""
    clock = [NOW.timestamp()]
    store = RedisTelemetryStore(REDIS_URL, key_prefix=redis_prefix, clock=lambda: clock[0])
    inspect = redis.Redis.from_url(REDIS_URL)
    await store.open()
    try:
        t = tenant()
        prefix = tenant_prefix(redis_prefix, t)
        first = [run(f"e{i}", job_version="1.0", duration_ms=10.0 + i) for i in range(5)]
        await store.ingest_executions(t, first)
        await store.window_stats(t, ["job-1"], NOW - timedelta(hours=24), NOW)  # summaries
        minute = f"{prefix}mj:m:{bucket_start(NOW.timestamp(), Resolution.MINUTE)}:job-1"
        version, versions = prefix + "mv:job-1:1.0", prefix + "vs:job-1"
        summary, histogram = prefix + "r:job-1", prefix + "rh:job-1"
        await store.ingest_executions(t, [run("again", job_version="1.0")])
        retention = store.retention_seconds
        assert inspect.ttl(version) > retention  # renewed for an hour more
        assert inspect.pttl(versions) >= inspect.pttl(version)
        assert inspect.ttl(summary) > 2 * 86_400
        for key in (minute, version, summary, histogram):
            inspect.expire(key, 1_000)
        clock[0] += 1_800  # within the hour: not renewed
        await store.ingest_executions(t, [run("soon", job_version="1.0", duration_ms=1.0)])
        assert [inspect.ttl(k) for k in (version, summary, histogram)] == [1_000] * 3
        clock[0] += 1_900  # an hour after the renewal: renewed
        later = [run("late", job_version="1.0", duration_ms=0.5), run("v2", job_version="2.0")]
        await store.ingest_executions(t, later)
        assert 0 < inspect.ttl(minute) <= 1_000  # kept
        assert inspect.ttl(version) > retention  # renewed
        assert inspect.ttl(summary) > 2 * 86_400
        assert inspect.ttl(histogram) > 2 * 86_400
        assert inspect.pttl(versions) >= inspect.pttl(version)
        keys = [k.decode() for k in inspect.scan_iter(match=prefix + "*", count=1_000)]
        assert {minute, version, versions, summary, histogram} <= set(keys)
        lasting = {prefix + "jobs", prefix + "last"}  # one entry per job, no TTL
        indexes = {prefix + "j:job-1", prefix + "all", prefix + "s:success"}  # by the purge
        assert [k for k in keys if k not in lasting | indexes and inspect.ttl(k) < 0] == []
        [bucket] = await store.metrics(t, "job-1", Resolution.MINUTE, NOW, NOW)
        assert bucket.counts == {"success": 9}
        assert (bucket.duration_min, bucket.duration_max) == (0.5, 100.0)
        assert bucket.duration_sum == sum(10.0 + i for i in range(5)) + 1.0 + 0.5 + 200.0
        versions_seen = {v.version: v.metrics.total for v in await store.version_stats(t, "job-1")}
        assert versions_seen == {"1.0": 8, "2.0": 1}
        stats = await store.window_stats(t, ["job-1"], NOW - timedelta(hours=24), NOW)
        assert stats["job-1"].counts == {"success": 9}  # the `x` field is not a count
    finally:
        await store.close()
        inspect.close()


async def test_redis_indexes_are_trimmed_by_the_purge_alone(redis_prefix: str) -> None:
    """Ingestion does not trim the execution indexes; the periodic purge does, by age, and an
    index whose entries are all purged is gone, so index memory stays bounded."""
    store = RedisTelemetryStore(REDIS_URL, key_prefix=redis_prefix, retention_seconds=86_400)
    inspect = redis.Redis.from_url(REDIS_URL)
    await store.open()
    try:
        t = tenant()
        prefix = tenant_prefix(redis_prefix, t)
        old = [run(f"old{i}", started_at=NOW - timedelta(days=2)) for i in range(3)]
        await store.ingest_executions(t, [*old, run("new", started_at=NOW)])
        indexes = [prefix + "j:job-1", prefix + "all", prefix + "s:success"]
        assert [inspect.zcard(k) for k in indexes] == [4, 4, 4]  # not trimmed on write
        assert await store.purge_expired(NOW.astimezone(UTC)) == 3 * 3
        assert [inspect.zcard(k) for k in indexes] == [1, 1, 1]
        assert [e.exec_id for e in await store.list_executions(t, "job-1")] == ["new"]
        await store.purge_expired(NOW + timedelta(days=1, minutes=1))
        zsets = list(inspect.scan_iter(match=prefix + "*", count=1_000, _type="zset"))
        assert zsets == []
    finally:
        await store.close()
        inspect.close()
