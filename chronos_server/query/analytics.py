"""Analytics routes: summaries, time series and the raw metrics buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import FromQuery, QueryParameter

from chronos_core._read_models import AnalyticsSummary, TimeSeries
from chronos_server.auth import Principal
from chronos_server.query._examples import ok
from chronos_server.query.controller import Since, Until, utc
from chronos_server.query.models import MetricsBucketView
from chronos_server.query.service import MAX_SPAN, ReadService, check_range
from chronos_server.storage import Resolution, TelemetryStore

__all__ = ["AnalyticsController", "Bucket"]

PrincipalDep = NamedDependency[Principal]
ServiceDep = NamedDependency[ReadService]
StoreDep = NamedDependency[TelemetryStore]

JobFilter = Annotated[
    str | None,
    QueryParameter(
        name="jobId",
        description="One job; the whole tenant when absent",
        examples=[Example(value="nightly-report")],
    ),
]


class Bucket(StrEnum):
    """Width of a time-series bucket."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def resolution(self) -> Resolution:
        """The stored resolution it reads."""
        return {"minute": Resolution.MINUTE, "hour": Resolution.HOUR, "day": Resolution.DAY}[
            self.value
        ]


class AnalyticsController(Controller):
    """`/api/analytics` and `/api/metrics`."""

    path = "/api"
    tags = ["analytics"]

    @get(
        "/analytics/summary",
        operation_id="getAnalyticsSummary",
        summary="Runs, failures and duration percentiles; slowest and most failing jobs",
        responses=ok("summary", AnalyticsSummary, "Summary of the window"),
    )
    async def summary(
        self,
        principal: PrincipalDep,
        read_service: ServiceDep,
        since: Since,
        until: Until,
        job_id: JobFilter = None,
        top: Annotated[int, QueryParameter(ge=1, le=100, examples=[Example(value=5)])] = 5,
    ) -> AnalyticsSummary:
        """Over [since, until] (the last 24 hours by default), rounded out to whole hours."""
        return await read_service.summary(principal.tenant, job_id, utc(since), utc(until), top=top)

    @get(
        "/analytics/timeseries",
        operation_id="getAnalyticsTimeSeries",
        summary="Runs, failures and percentiles per minute, hour or day",
        responses=ok("series", TimeSeries, "Buckets oldest first"),
    )
    async def timeseries(
        self,
        principal: PrincipalDep,
        read_service: ServiceDep,
        since: Since,
        until: Until,
        job_id: JobFilter = None,
        bucket: Annotated[Bucket, QueryParameter(examples=[Example(value="hour")])] = Bucket.HOUR,
    ) -> TimeSeries:
        """At most 2 days of minutes, 35 days of hours or 400 days of days."""
        return await read_service.timeseries(
            principal.tenant, bucket.resolution, job_id, utc(since), utc(until)
        )

    @get(
        "/metrics",
        operation_id="getMetrics",
        summary="Raw time-bucketed metrics",
        responses=ok("metrics", list[MetricsBucketView], "Buckets with data, oldest first"),
    )
    async def metrics(
        self,
        principal: PrincipalDep,
        telemetry_store: StoreDep,
        job_id: JobFilter = None,
        resolution: FromQuery[Resolution] = Resolution.HOUR,
        since: Since = None,
        until: Until = None,
    ) -> list[MetricsBucketView]:
        """Buckets of one job (`jobId`) or of the whole tenant; the last day by default."""
        end = utc(until) or datetime.now(UTC)
        start = utc(since) or end - timedelta(days=1)
        check_range(start, end, MAX_SPAN[resolution])
        buckets = await telemetry_store.metrics(principal.tenant, job_id, resolution, start, end)
        return [MetricsBucketView.from_bucket(bucket) for bucket in buckets]
