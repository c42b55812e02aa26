"""OpenAPI examples of the read routes: one realistic answer per route, built from the models
themselves so an example can never drift from the schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example

from chronos_core._models import ExecutionEvent, ExecutionStatus, JobDefinition, WireModel
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

__all__ = ["ok"]

_START = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
_DEFINITION = JobDefinition(
    id="nightly-report",
    name="Nightly report",
    schedule="0 2 * * *",
    timezone="Europe/Paris",
    version="1.4.0",
)
_STATS = RunStats(
    runs=96,
    successes=94,
    failures=2,
    success_rate=94 / 96,
    failure_rate=2 / 96,
    avg_ms=1180.5,
    min_ms=830.0,
    max_ms=4120.0,
    p50_ms=1104.0,
    p95_ms=2176.0,
    p99_ms=3968.0,
)
_RUN = ExecutionSummary(
    exec_id="nightly-report:1725192000000",
    job_id="nightly-report",
    status=ExecutionStatus.SUCCESS,
    started_at=_START,
    finished_at=_START + timedelta(milliseconds=1250),
    duration_ms=1250,
    exit_code=0,
    job_version="1.4.0",
    app_version="2.0.1",
)
_FAILED = ExecutionEvent(
    exec_id="nightly-report:1725105600000",
    job_id="nightly-report",
    status=ExecutionStatus.FAILED,
    started_at=_START - timedelta(days=1),
    finished_at=_START - timedelta(days=1) + timedelta(milliseconds=310),
    duration_ms=310,
    exit_code=1,
    error_type="KeyError",
    error_message="'region'",
    error_stack='Traceback (most recent call last):\n  File "report.py", line 42, in build\n'
    "    region = row['region']\nKeyError: 'region'",
    code_snippet="def build(row):\n    region = row['region']",
    code_language="python",
    stdout="loading 1204 rows\n",
    stderr="",
    job_version="1.4.0",
)
_SUMMARY = JobSummary(
    id="nightly-report",
    name="Nightly report",
    schedule="0 2 * * *",
    timezone="Europe/Paris",
    version="1.4.0",
    last_exec_id=_RUN.exec_id,
    last_status=ExecutionStatus.SUCCESS,
    last_run_at=_START,
    next_run_at=_START + timedelta(hours=12),
    window_start=_START - timedelta(hours=24),
    window_end=_START,
    stats=_STATS,
)
_VERSIONS = [
    VersionSummary(
        version="1.3.2",
        first_seen=_START - timedelta(days=20),
        last_seen=_START - timedelta(days=3),
        stats=_STATS.model_copy(update={"failures": 1, "failure_rate": 1 / 96}),
    ),
    VersionSummary(
        version="1.4.0",
        first_seen=_START - timedelta(days=3),
        last_seen=_START,
        stats=_STATS,
    ),
]

_METRICS = {
    "start": "2025-09-01T12:00:00.000Z",
    "resolution": "h",
    "total": 96,
    "counts": {"success": 94, "failed": 2},
    "durationCount": 96,
    "durationSum": 113328.0,
    "durationMin": 830.0,
    "durationMax": 4120.0,
    "durationAvg": 1180.5,
    "p50": 1104.0,
    "p95": 2176.0,
    "p99": 3968.0,
}

EXAMPLES: dict[str, WireModel | list[Any]] = {
    "metrics": [_METRICS],
    "jobs": [_SUMMARY],
    "job": JobDetail(
        **_SUMMARY.model_dump(), definition=_DEFINITION, versions=_VERSIONS, recent_runs=[_RUN]
    ),
    "runs": [_FAILED],
    "page": ExecutionPage(items=[_RUN], next_cursor="MTcyNTE5MjAwMDAwMDpuaWdodGx5"),
    "execution": _FAILED,
    "summary": AnalyticsSummary(
        window_start=_START - timedelta(hours=24),
        window_end=_START,
        totals=_STATS,
        slowest_jobs=[JobRanking(job_id="nightly-report", name="Nightly report", stats=_STATS)],
        most_failing_jobs=[JobRanking(job_id="nightly-report", stats=_STATS)],
    ),
    "series": TimeSeries(
        job_id="nightly-report",
        bucket="hour",
        points=[TimeSeriesPoint(start=_START, stats=_STATS)],
    ),
    "versions": VersionComparison(
        job_id="nightly-report",
        versions=_VERSIONS,
        previous="1.3.2",
        latest="1.4.0",
        failure_rate_delta=1 / 96,
        p95_ratio=1.0,
    ),
}


def _wire(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value.to_wire()


def ok(name: str, container: Any, description: str) -> dict[int, ResponseSpec]:
    """`responses=` of a route answering 200 with `container`, documented by an example."""
    return {
        200: ResponseSpec(
            data_container=container,
            description=description,
            generate_examples=False,
            examples=[Example(summary=description, value=_wire(EXAMPLES[name]))],
        )
    }
