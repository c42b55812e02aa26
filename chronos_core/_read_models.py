"""Response models of the read API, shared by the server (which answers with them) and the
query client (which parses them). camelCase on the wire, like every `WireModel`.

Durations are in milliseconds. Percentiles come from the server's log-linear histogram and
are within 3.1 % of the exact value.
"""

from __future__ import annotations

from pydantic import Field

from chronos_core._models import (
    ExecutionStatus,
    JobDefinition,
    RunMode,
    Source,
    Timestamp,
    WireModel,
)

__all__ = [
    "AnalyticsSummary",
    "ExecutionPage",
    "ExecutionSummary",
    "JobDetail",
    "JobRanking",
    "JobSummary",
    "RunStats",
    "TimeSeries",
    "TimeSeriesPoint",
    "VersionComparison",
    "VersionSummary",
]


class RunStats(WireModel):
    """Counts and duration percentiles of the final runs in some window."""

    runs: int = 0
    successes: int = 0
    failures: int = Field(default=0, description="failed, timeout and missed runs")
    success_rate: float | None = Field(default=None, description="successes / runs, 0..1")
    failure_rate: float | None = Field(default=None, description="failures / runs, 0..1")
    avg_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class JobSummary(WireModel):
    """A job in the jobs list: its definition's headline, last run, next run and recent stats.

    Jobs that sent runs without being registered are listed too (`registered` is false).
    """

    id: str
    name: str
    registered: bool = True
    schedule: str = ""
    timezone: str | None = None
    run_mode: RunMode | None = None
    version: str | None = None
    source: Source | None = None
    last_exec_id: str | None = None
    last_status: ExecutionStatus | None = None
    last_run_at: Timestamp | None = None
    next_run_at: Timestamp | None = Field(
        default=None, description="From the cron schedule in the job's time zone"
    )
    window_start: Timestamp
    window_end: Timestamp
    stats: RunStats = Field(default_factory=RunStats, description="Final runs in the window")


class ExecutionSummary(WireModel):
    """An execution in a list: everything but the logs, stack and code snippet."""

    exec_id: str
    job_id: str
    status: ExecutionStatus
    started_at: Timestamp
    finished_at: Timestamp | None = None
    duration_ms: float | None = None
    exit_code: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    attempt: int = 1
    job_version: str | None = None
    app_version: str | None = None
    source: Source | None = None
    host: str | None = None
    trigger_id: str | None = None


class ExecutionPage(WireModel):
    """One page of executions, newest first; pass `nextCursor` back as `cursor` for the next."""

    items: list[ExecutionSummary]
    next_cursor: str | None = None


class VersionSummary(WireModel):
    """One version of a job, as seen in its final runs."""

    version: str
    first_seen: Timestamp
    last_seen: Timestamp
    stats: RunStats


class JobDetail(JobSummary):
    """A job with its full definition, the versions seen and its latest runs."""

    definition: JobDefinition | None = None
    versions: list[VersionSummary] = Field(default_factory=list)
    recent_runs: list[ExecutionSummary] = Field(default_factory=list)


class JobRanking(WireModel):
    """A job's place in a ranking (slowest, most failing)."""

    job_id: str
    name: str | None = None
    stats: RunStats


class AnalyticsSummary(WireModel):
    """Tenant-wide (or one job's) totals over a window, with the slowest and most failing jobs."""

    job_id: str | None = None
    window_start: Timestamp
    window_end: Timestamp
    totals: RunStats
    slowest_jobs: list[JobRanking] = Field(default_factory=list, description="By p95")
    most_failing_jobs: list[JobRanking] = Field(default_factory=list, description="By failures")


class TimeSeriesPoint(WireModel):
    """One bucket of a time series."""

    start: Timestamp
    stats: RunStats


class TimeSeries(WireModel):
    """Buckets of one job (or the tenant) over a range; empty buckets are included as zeros."""

    job_id: str | None = None
    bucket: str = Field(description="minute, hour or day")
    points: list[TimeSeriesPoint]


class VersionComparison(WireModel):
    """How the latest version of a job does against the one before it.

    `regressed` is true when the latest version fails more often (by over 5 percentage points)
    or is slower (p95 over 1.2 times the previous one), each judged on at least 5 runs.
    """

    job_id: str
    versions: list[VersionSummary]
    previous: str | None = None
    latest: str | None = None
    failure_rate_delta: float | None = Field(default=None, description="latest - previous")
    p95_ratio: float | None = Field(default=None, description="latest p95 / previous p95")
    regressed: bool = False
