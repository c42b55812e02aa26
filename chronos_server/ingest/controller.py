"""HTTP routes of ingestion; the work is in `IngestService`."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK

from chronos_core._models import IngestResult, RegisterResult
from chronos_server._openapi import json_body_operation
from chronos_server.auth import Principal
from chronos_server.ingest._body import read_json_body
from chronos_server.ingest.service import IngestService

__all__ = ["IngestController"]


class IngestController(Controller):
    """`/api/ingest`: what the SDK sends."""

    path = "/api/ingest"
    tags = ["ingest"]

    @post(
        "/jobs/register",
        operation_id="registerJobs",
        summary="Register or update job definitions",
        status_code=HTTP_200_OK,
        operation_class=json_body_operation("JobRegistration"),
    )
    async def register_jobs(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        ingest_service: NamedDependency[IngestService],
        max_body_bytes: NamedDependency[int],
    ) -> RegisterResult:
        """Upsert jobs; invalid items are reported by index, the others are stored."""
        payload = await read_json_body(request, max_body_bytes)
        return await ingest_service.register_jobs(principal, payload)

    @post(
        "/executions/batch",
        operation_id="ingestExecutions",
        summary="Ingest a batch of executions",
        status_code=HTTP_200_OK,
        operation_class=json_body_operation("ExecutionBatch"),
    )
    async def ingest_executions(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        ingest_service: NamedDependency[IngestService],
        max_body_bytes: NamedDependency[int],
    ) -> IngestResult:
        """Store each execution once (by `execId`); invalid items are reported by index."""
        payload = await read_json_body(request, max_body_bytes)
        return await ingest_service.ingest_executions(principal, payload)
