"""Builders for wire objects used across tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chronos_core import ExecutionEvent, ExecutionStatus

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_event(
    n: int, *, job_id: str = "job-1", status: ExecutionStatus = ExecutionStatus.SUCCESS
) -> ExecutionEvent:
    started = _EPOCH + timedelta(seconds=n)
    return ExecutionEvent(
        exec_id=f"{job_id}:{n}",
        job_id=job_id,
        status=status,
        started_at=started,
        finished_at=started + timedelta(milliseconds=5),
        duration_ms=5.0,
    )
