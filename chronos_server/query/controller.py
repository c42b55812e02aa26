"""Read routes over a tenant's own jobs, executions and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from chronos_core._models import ExecutionEvent, JobDefinition
from chronos_server.auth import Principal
from chronos_server.errors import BadRequest, NotFound
from chronos_server.query.models import MetricsBucketView
from chronos_server.storage import Resolution, TelemetryStore

__all__ = ["QueryController"]

PrincipalDep = NamedDependency[Principal]
StoreDep = NamedDependency[TelemetryStore]

_MAX_SPAN = {
    Resolution.MINUTE: timedelta(days=2),
    Resolution.HOUR: timedelta(days=35),
    Resolution.DAY: timedelta(days=400),
}


class QueryController(Controller):
    """`/api/jobs`, `/api/executions`, `/api/metrics`: what a tenant stored."""

    path = "/api"
    tags = ["query"]

    @get("/jobs", operation_id="listJobs", summary="List the caller's jobs")
    async def list_jobs(
        self,
        principal: PrincipalDep,
        telemetry_store: StoreDep,
    ) -> list[JobDefinition]:
        """Every job registered by the caller's tenant."""
        return await telemetry_store.list_jobs(principal.tenant)

    @get("/jobs/{job_id:str}", operation_id="getJob", summary="Get one job")
    async def get_job(
        self,
        job_id: FromPath[str],
        principal: PrincipalDep,
        telemetry_store: StoreDep,
    ) -> JobDefinition:
        """One job of the caller's tenant."""
        job = await telemetry_store.get_job(principal.tenant, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}", field="jobId")
        return job

    @get(
        "/jobs/{job_id:str}/executions",
        operation_id="listExecutions",
        summary="Latest executions of a job",
    )
    async def list_executions(
        self,
        job_id: FromPath[str],
        principal: PrincipalDep,
        telemetry_store: StoreDep,
        limit: Annotated[int, QueryParameter(ge=1, le=1_000)] = 100,
    ) -> list[ExecutionEvent]:
        """Newest first."""
        return await telemetry_store.list_executions(principal.tenant, job_id, limit)

    @get("/executions/{exec_id:str}", operation_id="getExecution", summary="Get one execution")
    async def get_execution(
        self,
        exec_id: FromPath[str],
        principal: PrincipalDep,
        telemetry_store: StoreDep,
    ) -> ExecutionEvent:
        """One execution of the caller's tenant."""
        execution = await telemetry_store.get_execution(principal.tenant, exec_id)
        if execution is None:
            raise NotFound(f"no execution {exec_id!r}", field="execId")
        return execution

    @get("/metrics", operation_id="getMetrics", summary="Time-bucketed metrics")
    async def metrics(
        self,
        principal: PrincipalDep,
        telemetry_store: StoreDep,
        job_id: Annotated[str | None, QueryParameter(name="jobId")] = None,
        resolution: FromQuery[Resolution] = Resolution.HOUR,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> list[MetricsBucketView]:
        """Buckets of one job (`jobId`) or of the whole tenant; the last day by default."""
        end = _utc(until) if until else datetime.now(UTC)
        start = _utc(since) if since else end - timedelta(days=1)
        if start > end:
            raise BadRequest("`since` is after `until`", field="since")
        if end - start > _MAX_SPAN[resolution]:
            raise BadRequest(
                f"at most {_MAX_SPAN[resolution].days} days at resolution {resolution.value!r}",
                field="since",
            )
        buckets = await telemetry_store.metrics(principal.tenant, job_id, resolution, start, end)
        return [MetricsBucketView.from_bucket(bucket) for bucket in buckets]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
