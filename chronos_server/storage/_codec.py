"""How jobs and executions are serialised inside the stores (compact camelCase JSON)."""

from __future__ import annotations

from chronos_core._models import ExecutionEvent, JobDefinition

__all__ = ["decode_event", "decode_job", "encode_event", "encode_job"]


def encode_event(event: ExecutionEvent) -> str:
    """Wire JSON without nulls and defaults: the smallest form that reads back the same."""
    return event.model_dump_json(by_alias=True, exclude_none=True, exclude_defaults=True)


def decode_event(data: str | bytes) -> ExecutionEvent:
    """Inverse of `encode_event`."""
    return ExecutionEvent.model_validate_json(data)


def encode_job(job: JobDefinition) -> str:
    """Wire JSON of a job definition, without nulls."""
    return job.model_dump_json(by_alias=True, exclude_none=True)


def decode_job(data: str | bytes) -> JobDefinition:
    """Inverse of `encode_job`."""
    return JobDefinition.model_validate_json(data)
