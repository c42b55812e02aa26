"""Query client of the read API: `ChronosAPI` and its async twin `AsyncChronosAPI`.

    api = ChronosAPI()                         # CHRONOS_API_KEY / CHRONOS_API_URL
    for job in api.jobs():
        print(job.id, job.last_status, job.stats.p95_ms)
    for run in api.executions(job_id="etl", status="failed"):   # every page, lazily
        print(run.exec_id, run.error_message)
    for event in api.follow():                 # live, resumes after a dropped connection
        print(event.exec_id, event.status)

Results are the wire models of `chronos_core` (`JobSummary`, `ExecutionSummary`, ...); errors
are the SDK's (`AuthenticationError`, `RejectedError` for a 404, `ConnectError`, ...).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from chronos_core import _exceptions as exc_mod
from chronos_core._client import _BaseClient, tls_verify_for
from chronos_core._models import ExecutionEvent, ExecutionIngested, format_timestamp
from chronos_core._read_models import (
    AnalyticsSummary,
    ExecutionPage,
    ExecutionSummary,
    JobDetail,
    JobSummary,
    TimeSeries,
    VersionComparison,
)

__all__ = ["AsyncChronosAPI", "ChronosAPI"]

logger = logging.getLogger("chronos_core.query")

T = TypeVar("T")
STREAM_PATH = "/api/stream/executions"
DEFAULT_PAGE_SIZE = 100
RECONNECT_DELAY = 1.0
_JOBS = TypeAdapter(list[JobSummary])

Statuses = str | Iterable[str] | None


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; datetimes as the wire writes them."""
    params: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = format_timestamp(value)
        elif name == "status" and not isinstance(value, str):
            value = list(value)
        params[name] = value
    return params


def _execution_params(
    job_id: str | None,
    status: Statuses,
    since: datetime | None,
    until: datetime | None,
    job_version: str | None,
    source: str | None,
) -> dict[str, Any]:
    return _params(
        jobId=job_id,
        status=status,
        since=since,
        until=until,
        jobVersion=job_version,
        source=source,
    )


class _SSEParser:
    """Turns SSE lines into `(event, id, data)` and remembers the last id."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> tuple[str, str] | None:
        if line:
            name, _, value = line.partition(":")
            if name:
                self._fields[name] = value.removeprefix(" ")
            return None
        fields, self._fields = self._fields, {}
        if "id" in fields:
            self.last_id = fields["id"]
        if "event" not in fields:
            return None
        return fields["event"], fields.get("data", "")


class _QueryBase(_BaseClient):
    """Requests and parsing shared by the sync and async clients."""

    def _check(self, response: httpx.Response, model: type[T] | TypeAdapter[T]) -> T:
        status = response.status_code
        if status in (401, 403):
            raise exc_mod.AuthenticationError(status, response.text[:500])
        if status >= 400:
            raise exc_mod.RejectedError(status, response.text[:500])
        try:
            if isinstance(model, TypeAdapter):
                return model.validate_json(response.content)
            return model.model_validate_json(response.content)  # type: ignore[attr-defined, no-any-return]
        except ValidationError as exc:
            raise exc_mod.TransportError(f"unexpected answer from the server: {exc}") from exc

    def _event(self, event: str, data: str, on_reset: Callable[[], None] | None) -> Any:
        if event == "execution:ingested":
            return ExecutionIngested.model_validate(json.loads(data))
        if event == "reset":
            if on_reset is not None:
                on_reset()
            else:
                logger.warning("the live stream had a gap: some executions were not delivered")
        return None


class ChronosAPI(_QueryBase):
    """Synchronous client of the read API."""

    def __init__(self, *, http: httpx.Client | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self._http = http or httpx.Client(
            timeout=self.settings.request_timeout, verify=tls_verify_for(self.endpoint)
        )

    def _get(self, path: str, model: type[T] | TypeAdapter[T], params: dict[str, Any]) -> T:
        headers = {k: v for k, v in self._headers.items() if k != "content-type"}
        try:
            response = self._http.get(self.endpoint + path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        return self._check(response, model)

    def jobs(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[JobSummary]:
        """Every job with its last run, next run and stats over [since, until] (24 h)."""
        return self._get("/api/jobs", _JOBS, _params(since=since, until=until))

    def job(self, job_id: str) -> JobDetail:
        """One job with its definition, versions seen and latest runs."""
        return self._get(f"/api/jobs/{quote(job_id, safe='')}", JobDetail, {})

    def executions_page(
        self,
        *,
        job_id: str | None = None,
        status: Statuses = None,
        since: datetime | None = None,
        until: datetime | None = None,
        job_version: str | None = None,
        source: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ExecutionPage:
        """One page of executions, newest first."""
        params = _execution_params(job_id, status, since, until, job_version, source)
        params.update(_params(cursor=cursor, limit=limit))
        return self._get("/api/executions", ExecutionPage, params)

    def executions(
        self,
        *,
        job_id: str | None = None,
        status: Statuses = None,
        since: datetime | None = None,
        until: datetime | None = None,
        job_version: str | None = None,
        source: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[ExecutionSummary]:
        """Every matching execution, newest first, fetching pages as the loop goes."""
        cursor = None
        while True:
            page = self.executions_page(
                job_id=job_id,
                status=status,
                since=since,
                until=until,
                job_version=job_version,
                source=source,
                cursor=cursor,
                limit=page_size,
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def execution(self, exec_id: str) -> ExecutionEvent:
        """One execution with its error stack, code snippet, stdout and stderr."""
        return self._get(f"/api/executions/{quote(exec_id, safe='')}", ExecutionEvent, {})

    def summary(
        self,
        *,
        job_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        top: int = 5,
    ) -> AnalyticsSummary:
        """Runs, failures, percentiles; the slowest and most failing jobs."""
        params = _params(jobId=job_id, since=since, until=until, top=top)
        return self._get("/api/analytics/summary", AnalyticsSummary, params)

    def timeseries(
        self,
        *,
        bucket: str = "hour",
        job_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> TimeSeries:
        """Stats per minute, hour or day."""
        params = _params(bucket=bucket, jobId=job_id, since=since, until=until)
        return self._get("/api/analytics/timeseries", TimeSeries, params)

    def compare_versions(self, job_id: str) -> VersionComparison:
        """The versions of a job and whether the latest one regressed."""
        return self._get(f"/api/jobs/{quote(job_id, safe='')}/versions", VersionComparison, {})

    def follow(
        self, *, on_reset: Callable[[], None] | None = None, reconnect: bool = True
    ) -> Iterator[ExecutionIngested]:
        """Live executions of the tenant (Server-Sent Events), until the loop stops.

        After a dropped connection it reconnects with `Last-Event-ID`, so nothing is missed;
        if the server no longer buffers the gap, `on_reset` is called (default: a warning).
        """
        parser = _SSEParser()
        while True:
            headers = {k: v for k, v in self._headers.items() if k != "content-type"}
            headers["accept"] = "text/event-stream"
            if parser.last_id:
                headers["last-event-id"] = parser.last_id
            try:
                with self._http.stream(
                    "GET",
                    self.endpoint + STREAM_PATH,
                    headers=headers,
                    timeout=httpx.Timeout(self.settings.request_timeout, read=None),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._check(response, ExecutionIngested)
                    for line in response.iter_lines():
                        found = parser.feed(line)
                        if found is not None:
                            event = self._event(*found, on_reset)
                            if event is not None:
                                yield event
            except httpx.HTTPError as exc:
                if not reconnect:
                    raise self._translate(exc) from exc
                logger.info("live stream dropped (%s); reconnecting", exc)
            if not reconnect:
                return
            time.sleep(RECONNECT_DELAY)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncChronosAPI(_QueryBase):
    """Asynchronous client of the read API; the same methods as `ChronosAPI`, awaited."""

    def __init__(self, *, http: httpx.AsyncClient | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self._http = http or httpx.AsyncClient(
            timeout=self.settings.request_timeout, verify=tls_verify_for(self.endpoint)
        )

    async def _get(self, path: str, model: type[T] | TypeAdapter[T], params: dict[str, Any]) -> T:
        headers = {k: v for k, v in self._headers.items() if k != "content-type"}
        try:
            response = await self._http.get(self.endpoint + path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        return self._check(response, model)

    async def jobs(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[JobSummary]:
        """Every job with its last run, next run and stats over [since, until] (24 h)."""
        return await self._get("/api/jobs", _JOBS, _params(since=since, until=until))

    async def job(self, job_id: str) -> JobDetail:
        """One job with its definition, versions seen and latest runs."""
        return await self._get(f"/api/jobs/{quote(job_id, safe='')}", JobDetail, {})

    async def executions_page(
        self,
        *,
        job_id: str | None = None,
        status: Statuses = None,
        since: datetime | None = None,
        until: datetime | None = None,
        job_version: str | None = None,
        source: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ExecutionPage:
        """One page of executions, newest first."""
        params = _execution_params(job_id, status, since, until, job_version, source)
        params.update(_params(cursor=cursor, limit=limit))
        return await self._get("/api/executions", ExecutionPage, params)

    async def executions(
        self,
        *,
        job_id: str | None = None,
        status: Statuses = None,
        since: datetime | None = None,
        until: datetime | None = None,
        job_version: str | None = None,
        source: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[ExecutionSummary]:
        """Every matching execution, newest first, fetching pages as the loop goes."""
        cursor = None
        while True:
            page = await self.executions_page(
                job_id=job_id,
                status=status,
                since=since,
                until=until,
                job_version=job_version,
                source=source,
                cursor=cursor,
                limit=page_size,
            )
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def execution(self, exec_id: str) -> ExecutionEvent:
        """One execution with its error stack, code snippet, stdout and stderr."""
        return await self._get(f"/api/executions/{quote(exec_id, safe='')}", ExecutionEvent, {})

    async def summary(
        self,
        *,
        job_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        top: int = 5,
    ) -> AnalyticsSummary:
        """Runs, failures, percentiles; the slowest and most failing jobs."""
        params = _params(jobId=job_id, since=since, until=until, top=top)
        return await self._get("/api/analytics/summary", AnalyticsSummary, params)

    async def timeseries(
        self,
        *,
        bucket: str = "hour",
        job_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> TimeSeries:
        """Stats per minute, hour or day."""
        params = _params(bucket=bucket, jobId=job_id, since=since, until=until)
        return await self._get("/api/analytics/timeseries", TimeSeries, params)

    async def compare_versions(self, job_id: str) -> VersionComparison:
        """The versions of a job and whether the latest one regressed."""
        return await self._get(
            f"/api/jobs/{quote(job_id, safe='')}/versions", VersionComparison, {}
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
