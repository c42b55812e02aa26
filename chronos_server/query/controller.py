"""Read routes over a tenant's own jobs and executions; the work is in `ReadService`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import FromPath, FromQuery, QueryParameter

from chronos_core._models import ExecutionEvent, ExecutionStatus, Source
from chronos_core._read_models import ExecutionPage, JobDetail, JobSummary, VersionComparison
from chronos_server.auth import Principal
from chronos_server.query._examples import ok
from chronos_server.query.service import ReadService
from chronos_server.storage import Cursor, ExecutionQuery, TelemetryStore

__all__ = ["ExecutionsController", "JobsController", "utc"]

PrincipalDep = NamedDependency[Principal]
ServiceDep = NamedDependency[ReadService]
StoreDep = NamedDependency[TelemetryStore]

MAX_PAGE = 500


def utc(value: datetime | None) -> datetime | None:
    """Naive query datetimes are UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Since = Annotated[
    datetime | None,
    QueryParameter(
        description="Start of the window (default: 24 hours before `until`)",
        examples=[Example(value="2025-09-01T00:00:00Z")],
    ),
]
Until = Annotated[
    datetime | None,
    QueryParameter(
        description="End of the window (default: now)",
        examples=[Example(value="2025-09-02T00:00:00Z")],
    ),
]


class JobsController(Controller):
    """`/api/jobs`: a tenant's jobs with their state."""

    path = "/api/jobs"
    tags = ["jobs"]

    @get(
        "/",
        operation_id="listJobs",
        summary="List jobs with last run, next run and recent stats",
        responses=ok("jobs", list[JobSummary], "Jobs by id"),
    )
    async def list_jobs(
        self, principal: PrincipalDep, read_service: ServiceDep, since: Since, until: Until
    ) -> list[JobSummary]:
        """Registered jobs and jobs that sent runs; success rate and p95 over [since, until]."""
        return await read_service.list_jobs(principal.tenant, utc(since), utc(until))

    @get(
        "/{job_id:str}",
        operation_id="getJob",
        summary="One job: definition, state, versions seen and recent runs",
        responses=ok("job", JobDetail, "The job"),
    )
    async def get_job(
        self,
        job_id: FromPath[str],
        principal: PrincipalDep,
        read_service: ServiceDep,
        since: Since,
        until: Until,
    ) -> JobDetail:
        """404 if the tenant neither registered the job nor sent a run of it."""
        return await read_service.job_detail(principal.tenant, job_id, utc(since), utc(until))

    @get(
        "/{job_id:str}/executions",
        operation_id="listJobExecutions",
        summary="Latest executions of a job, in full",
        responses=ok("runs", list[ExecutionEvent], "Newest first"),
    )
    async def list_job_executions(
        self,
        job_id: FromPath[str],
        principal: PrincipalDep,
        telemetry_store: StoreDep,
        limit: Annotated[int, QueryParameter(ge=1, le=1_000, examples=[Example(value=20)])] = 100,
    ) -> list[ExecutionEvent]:
        """Newest first, logs included; `/api/executions?jobId=` pages through all of them."""
        return await telemetry_store.list_executions(principal.tenant, job_id, limit)

    @get(
        "/{job_id:str}/versions",
        operation_id="compareJobVersions",
        summary="Compare the versions of a job",
        responses=ok("versions", VersionComparison, "Versions oldest first"),
    )
    async def compare_versions(
        self, job_id: FromPath[str], principal: PrincipalDep, read_service: ServiceDep
    ) -> VersionComparison:
        """Runs, failure rate and percentiles per version; does the latest one regress?"""
        return await read_service.compare_versions(principal.tenant, job_id)


class ExecutionsController(Controller):
    """`/api/executions`: filtered, paged listing and detail."""

    path = "/api/executions"
    tags = ["executions"]

    @get(
        "/",
        operation_id="listExecutions",
        summary="Executions, newest first, filtered and paged by cursor",
        responses=ok("page", ExecutionPage, "One page"),
    )
    async def list_executions(
        self,
        principal: PrincipalDep,
        read_service: ServiceDep,
        since: Since,
        until: Until,
        job_id: Annotated[
            str | None, QueryParameter(name="jobId", examples=[Example(value="nightly-report")])
        ] = None,
        status: Annotated[
            list[ExecutionStatus] | None,
            QueryParameter(
                description="Repeat for several statuses", examples=[Example(value="failed")]
            ),
        ] = None,
        job_version: Annotated[
            str | None, QueryParameter(name="jobVersion", examples=[Example(value="1.4.0")])
        ] = None,
        source: FromQuery[Source | None] = None,
        cursor: Annotated[
            str | None,
            QueryParameter(
                description="`nextCursor` of the previous page",
                examples=[Example(value="MTcyNTE5MjAwMDAwMDpuaWdodGx5")],
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, examples=[Example(value=50)])] = 50,
    ) -> ExecutionPage:
        """Pages stay correct while runs arrive: the cursor is a position, not an offset."""
        query = ExecutionQuery(
            job_id=job_id,
            statuses=frozenset(status or ()),
            since=utc(since),
            until=utc(until),
            job_version=job_version,
            source=source,
            cursor=Cursor.decode(cursor) if cursor else None,
            limit=limit,
        )
        return await read_service.executions(principal.tenant, query)

    @get(
        "/{exec_id:str}",
        operation_id="getExecution",
        summary="One execution with its error stack, code snippet, stdout and stderr",
        responses=ok("execution", ExecutionEvent, "The execution"),
    )
    async def get_execution(
        self, exec_id: FromPath[str], principal: PrincipalDep, read_service: ServiceDep
    ) -> ExecutionEvent:
        """Everything stored about one run of the caller's tenant."""
        return await read_service.execution(principal.tenant, exec_id)
