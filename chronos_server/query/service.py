"""The read side: jobs with their state, executions, analytics. Knows nothing about HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from chronos_core._models import ExecutionEvent, ExecutionStatus, JobDefinition
from chronos_core._read_models import (
    AnalyticsSummary,
    ExecutionPage,
    ExecutionSummary,
    JobDetail,
    JobRanking,
    JobSummary,
    RunStats,
    TimeSeries,
    TimeSeriesPoint,
    VersionComparison,
    VersionSummary,
)
from chronos_server.errors import BadRequest, NotFound
from chronos_server.query.schedule import NextRunCache
from chronos_server.storage import (
    TENANT_SCOPE,
    ExecutionQuery,
    LastRun,
    MetricsBucket,
    Resolution,
    TelemetryStore,
    VersionStats,
    cover,
)
from chronos_server.storage._metrics import bucket_start

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_SPAN",
    "ReadService",
    "run_stats",
    "summarize_execution",
]

DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=35)
MAX_SPAN = {
    Resolution.MINUTE: timedelta(days=2),
    Resolution.HOUR: timedelta(days=35),
    Resolution.DAY: timedelta(days=400),
}
"""Longest time series per bucket width (minute buckets are kept two days, hours 35...)."""
WINDOW_CACHE_SECONDS = 2.0
"""Stats of a window that ended before the current hour may lag late runs by this much (see
`ReadService._window_stats`)."""
WINDOW_CACHE_ENTRIES = 1_000
RECENT_RUNS = 20
TOP_JOBS = 5
# Regression thresholds of `compare_versions`.
MIN_RUNS_TO_JUDGE = 5
FAILURE_RATE_MARGIN = 0.05
P95_RATIO_MARGIN = 1.2

_SUMMARY_FIELDS = tuple(ExecutionSummary.model_fields)
_QUANTILES = (0.5, 0.95, 0.99)
_FAILURES = frozenset(s.value for s in ExecutionStatus if s.is_failure)


def run_stats(bucket: MetricsBucket | None) -> RunStats:
    """Counts and percentiles of a (merged) metrics bucket."""
    if bucket is None or bucket.total == 0:
        return RunStats()
    runs = bucket.total
    failures = sum(n for status, n in bucket.counts.items() if status in _FAILURES)
    successes = bucket.counts.get(ExecutionStatus.SUCCESS.value, 0)
    p50, p95, p99 = bucket.percentiles(_QUANTILES)
    return RunStats(
        runs=runs,
        successes=successes,
        failures=failures,
        success_rate=successes / runs,
        failure_rate=failures / runs,
        avg_ms=bucket.duration_avg,
        min_ms=bucket.duration_min,
        max_ms=bucket.duration_max,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
    )


def summarize_execution(event: ExecutionEvent) -> ExecutionSummary:
    """The list form of an execution (no logs, stack or snippet)."""
    return ExecutionSummary.model_construct(**{n: getattr(event, n) for n in _SUMMARY_FIELDS})


def _version_summary(stats: VersionStats) -> VersionSummary:
    return VersionSummary(
        version=stats.version,
        first_seen=stats.first_seen,
        last_seen=stats.last_seen,
        stats=run_stats(stats.metrics),
    )


def check_range(start: datetime, end: datetime, longest: timedelta) -> None:
    """Refuse an inverted or too long range."""
    if start > end:
        raise BadRequest("`since` is after `until`", field="since")
    if end - start > longest:
        raise BadRequest(f"the range may span at most {longest.days} days", field="since")


class ReadService:
    """Everything the read API answers, over one `TelemetryStore`."""

    def __init__(
        self,
        store: TelemetryStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schedules: NextRunCache | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.schedules = schedules if schedules is not None else NextRunCache()
        self._windows: dict[tuple[Any, ...], tuple[float, dict[str, MetricsBucket]]] = {}

    async def _window_stats(
        self, tenant: str, scopes: list[str], start: datetime, end: datetime
    ) -> dict[str, MetricsBucket]:
        """`window_stats`; a window that ended before the current hour is shared for
        `WINDOW_CACHE_SECONDS` by requests of the same window.

        A window reaching into the current hour (the default one) is always read fresh: runs
        keep arriving in it, and stores answer it cheaply (Redis keeps a rolling 24-hour
        summary per job). An older window only changes by late runs, and may cost a merge of
        many buckets (it is rounded out to whole hours, so requests within an hour share it).
        """
        now = self.clock()
        if bucket_start(end.timestamp(), Resolution.HOUR) >= bucket_start(
            now.timestamp(), Resolution.HOUR
        ):
            return await self.store.window_stats(tenant, scopes, start, end)
        key = (tenant, tuple(scopes), tuple(cover(start, end)))
        moment = time.monotonic()
        cached = self._windows.get(key)
        if cached is not None and moment - cached[0] < WINDOW_CACHE_SECONDS:
            return cached[1]
        stats = await self.store.window_stats(tenant, scopes, start, end)
        if len(self._windows) >= WINDOW_CACHE_ENTRIES:
            self._windows.clear()
        self._windows[key] = (moment, stats)
        return stats

    def window(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        """[since, until], the last `DEFAULT_WINDOW` by default; at most `MAX_WINDOW` long."""
        end = until or self.clock()
        start = since or end - DEFAULT_WINDOW
        check_range(start, end, MAX_WINDOW)
        return start, end

    # -- jobs ----------------------------------------------------------------------------

    async def _job_ids(self, tenant: str) -> tuple[dict[str, JobDefinition], dict[str, LastRun]]:
        definitions = {job.id: job for job in await self.store.list_jobs(tenant)}
        return definitions, await self.store.last_runs(tenant)

    def _summary(
        self,
        job_id: str,
        job: JobDefinition | None,
        last: LastRun | None,
        stats: MetricsBucket | None,
        window: tuple[datetime, datetime],
        cls: type[JobSummary] = JobSummary,
        **extra: object,
    ) -> JobSummary:
        now = self.clock()
        upcoming = None
        if job is not None:
            upcoming = self.schedules.next_run(
                job, after=now, last_run=last.started_at if last is not None else None
            )
        return cls(
            id=job_id,
            name=job.name if job else job_id,
            registered=job is not None,
            schedule=job.schedule if job else "",
            timezone=job.timezone if job else None,
            run_mode=job.run_mode if job else None,
            version=job.version if job else None,
            source=job.source if job else None,
            last_exec_id=last.exec_id if last else None,
            last_status=last.status if last else None,
            last_run_at=last.started_at if last else None,
            next_run_at=upcoming,
            window_start=window[0],
            window_end=window[1],
            stats=run_stats(stats),
            **extra,
        )

    async def list_jobs(
        self, tenant: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[JobSummary]:
        """Registered jobs and jobs that sent runs, by id, with their stats in the window."""
        window = self.window(since, until)
        definitions, last_runs = await self._job_ids(tenant)
        ids = sorted(definitions.keys() | last_runs.keys())
        stats = await self._window_stats(tenant, ids, *window)
        return [
            self._summary(i, definitions.get(i), last_runs.get(i), stats.get(i), window)
            for i in ids
        ]

    async def job_detail(
        self, tenant: str, job_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> JobDetail:
        """One job with its definition, versions seen and latest runs."""
        window = self.window(since, until)
        definition = await self.store.get_job(tenant, job_id)
        last = (await self.store.last_runs(tenant)).get(job_id)
        if definition is None and last is None:
            raise NotFound(f"no job {job_id!r}", field="jobId")
        stats = await self._window_stats(tenant, [job_id], *window)
        versions = await self.store.version_stats(tenant, job_id)
        recent = await self.store.query_executions(
            tenant, ExecutionQuery(job_id=job_id, limit=RECENT_RUNS)
        )
        detail = self._summary(
            job_id,
            definition,
            last,
            stats.get(job_id),
            window,
            cls=JobDetail,
            definition=definition,
            versions=[_version_summary(v) for v in versions],
            recent_runs=[summarize_execution(e) for e in recent.items],
        )
        assert isinstance(detail, JobDetail)
        return detail

    async def compare_versions(self, tenant: str, job_id: str) -> VersionComparison:
        """The job's versions, oldest first, and whether the latest regressed."""
        versions = [_version_summary(v) for v in await self.store.version_stats(tenant, job_id)]
        if not versions and await self.store.get_job(tenant, job_id) is None:
            raise NotFound(f"no job {job_id!r}", field="jobId")
        comparison = VersionComparison(job_id=job_id, versions=versions)
        if len(versions) < 2:
            return comparison
        previous, latest = versions[-2], versions[-1]
        delta = ratio = None
        regressed = False
        judged = min(previous.stats.runs, latest.stats.runs) >= MIN_RUNS_TO_JUDGE
        if previous.stats.failure_rate is not None and latest.stats.failure_rate is not None:
            delta = latest.stats.failure_rate - previous.stats.failure_rate
            regressed = judged and delta > FAILURE_RATE_MARGIN
        if previous.stats.p95_ms and latest.stats.p95_ms is not None:
            ratio = latest.stats.p95_ms / previous.stats.p95_ms
            regressed = regressed or (judged and ratio > P95_RATIO_MARGIN)
        return comparison.model_copy(
            update={
                "previous": previous.version,
                "latest": latest.version,
                "failure_rate_delta": delta,
                "p95_ratio": ratio,
                "regressed": regressed,
            }
        )

    # -- executions ----------------------------------------------------------------------

    async def executions(self, tenant: str, query: ExecutionQuery) -> ExecutionPage:
        """One page of executions, newest first."""
        page = await self.store.query_executions(tenant, query)
        return ExecutionPage(
            items=[summarize_execution(e) for e in page.items],
            next_cursor=page.next_cursor.encode() if page.next_cursor else None,
        )

    async def execution(self, tenant: str, exec_id: str) -> ExecutionEvent:
        """One execution with everything stored about it."""
        execution = await self.store.get_execution(tenant, exec_id)
        if execution is None:
            raise NotFound(f"no execution {exec_id!r}", field="execId")
        return execution

    # -- analytics -----------------------------------------------------------------------

    async def summary(
        self,
        tenant: str,
        job_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        top: int = TOP_JOBS,
    ) -> AnalyticsSummary:
        """Totals of the tenant (or one job) over the window, and the job rankings."""
        window = self.window(since, until)
        if job_id is not None:
            stats = await self._window_stats(tenant, [job_id], *window)
            return AnalyticsSummary(
                job_id=job_id,
                window_start=window[0],
                window_end=window[1],
                totals=run_stats(stats.get(job_id)),
            )
        definitions, last_runs = await self._job_ids(tenant)
        ids = sorted(definitions.keys() | last_runs.keys())
        stats = await self._window_stats(tenant, [TENANT_SCOPE, *ids], *window)
        ranked = [
            JobRanking(
                job_id=i,
                name=definitions[i].name if i in definitions else None,
                stats=run_stats(stats[i]),
            )
            for i in ids
            if i in stats
        ]
        return AnalyticsSummary(
            window_start=window[0],
            window_end=window[1],
            totals=run_stats(stats.get(TENANT_SCOPE)),
            slowest_jobs=_top(ranked, lambda r: r.stats.p95_ms or 0.0, top),
            most_failing_jobs=_top(
                (r for r in ranked if r.stats.failures),
                lambda r: (r.stats.failures, r.stats.failure_rate or 0.0),
                top,
            ),
        )

    async def timeseries(
        self,
        tenant: str,
        resolution: Resolution,
        job_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> TimeSeries:
        """Every bucket of the range (empty ones as zeros), oldest first."""
        end = until or self.clock()
        start = since or end - DEFAULT_WINDOW
        check_range(start, end, MAX_SPAN[resolution])
        width = resolution.seconds
        first = int(start.timestamp()) // width * width
        aligned = datetime.fromtimestamp(first, tz=UTC)
        found = await self.store.metrics(tenant, job_id, resolution, aligned, end)
        buckets = {b.start: b for b in found}
        points = []
        for at in range(first, int(end.timestamp()) + 1, width):
            moment = datetime.fromtimestamp(at, tz=UTC)
            points.append(TimeSeriesPoint(start=moment, stats=run_stats(buckets.get(moment))))
        return TimeSeries(job_id=job_id, bucket=_BUCKET_NAMES[resolution], points=points)


_BUCKET_NAMES = {Resolution.MINUTE: "minute", Resolution.HOUR: "hour", Resolution.DAY: "day"}


def _top(
    ranked: Iterable[JobRanking], key: Callable[[JobRanking], object], count: int
) -> list[JobRanking]:
    return sorted(ranked, key=key, reverse=True)[:count]  # type: ignore[arg-type]
