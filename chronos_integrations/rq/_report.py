"""A horse's report made into its event: in the relay process (`_relay_main`), or in a worker
that exports from its own process.

Apart from `_channel`, which the worker and every horse hold, because making events takes the
capture code (`RunCapture`) and the events' helpers: a forking worker with a relay loads
those only once a run needs them (see `_worker._load_capture`); the relay loads this module
when it starts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chronos_core._capture import _hostname
from chronos_core._events import duration_ms, utc_from_ns, wire_timestamp
from chronos_core._limits import (
    MAX_ID_LENGTH,
    MAX_LABELS,
    MAX_SHORT_TEXT,
    MAX_VERSION_LENGTH,
    ExecutionStatus,
)
from chronos_integrations.rq._channel import TIMES, HorsePlan, decode_frames

if TYPE_CHECKING:
    from chronos_core import ExecutionEvent

__all__ = ["HorseReport", "event_of", "from_wire"]


class HorseReport:
    """A horse's report as the parent received it, with the parent's plan of the run.

    Handed to `BatchExporter.record_deferred`: its thread calls `event()` when it sends the
    next batch, so the parent's own loop only reads the pipe (see the module's docstring).
    """

    __slots__ = ("payload", "plan", "trace_id")

    def __init__(self, plan: HorsePlan, payload: bytes, trace_id: str | None = None) -> None:
        self.plan = plan
        self.payload = payload
        self.trace_id = trace_id  # read by the worker, when the plan comes from a relay

    def event(self) -> ExecutionEvent:
        """The run's event, made from what the horse reported."""
        return event_of(self.plan, self._report(), self.trace_id)

    def wire(self) -> dict[str, Any]:
        """`event().to_wire()`; for a plain success made directly, without a `RunCapture` or
        a model (the exporter's thread calls this for every job, in the worker's parent)."""
        report = self._report()
        plan = self.plan
        if not isinstance(report, tuple | list) or not _valid_ids(plan):
            return event_of(plan, report, self.trace_id).to_wire()
        wall_ns, duration_ns, pid, trace_id = report
        started = wall_ns // 1_000
        trace_id = plan.trace_of(trace_id or self.trace_id)
        wire: dict[str, Any] = {
            "execId": plan.exec_id,
            "jobId": plan.job_id,
            "status": "success",
            "startedAt": wire_timestamp(started),
            "finishedAt": wire_timestamp(started + duration_ns // 1_000),
            "durationMs": duration_ms(duration_ns),
            "attempt": max(1, int(plan.attempt)),
            "labels": [str(label)[:MAX_SHORT_TEXT] for label in plan.labels[:MAX_LABELS]],
            "metadata": {"rqJobId": plan.rq_job_id},
            "source": "rq",
            "host": _hostname(),
            "pid": pid,
        }
        for key, value, limit in (
            ("appVersion", plan.app_version, MAX_VERSION_LENGTH),
            ("queue", plan.queue, MAX_SHORT_TEXT),
            ("worker", plan.worker, MAX_SHORT_TEXT),
        ):
            if value:
                wire[key] = value[:limit]
        if trace_id is not None:
            wire["traceId"] = trace_id
        return wire

    def _report(self) -> Any:
        frames = decode_frames(self.payload)
        if not frames:
            raise ValueError("the work horse's report is empty or malformed")
        return frames[0]


def _valid_ids(plan: HorsePlan) -> bool:
    return all(0 < len(value) <= MAX_ID_LENGTH for value in (plan.job_id, plan.exec_id))


def event_of(plan: HorsePlan, report: Any, trace_id: str | None = None) -> ExecutionEvent:
    """The event of `plan`'s run from the horse's report (`HorsePlan.report()`); `trace_id`:
    the one the worker read, when the horse reported none."""
    run = plan.run()
    if isinstance(report, tuple | list):
        wall_ns, duration_ns, pid, reported = report
        started = utc_from_ns(wall_ns)
        fields: dict[str, Any] = {
            "status": ExecutionStatus.SUCCESS,
            "started_at": started,
            "finished_at": started + timedelta(microseconds=duration_ns // 1_000),
            "duration_ms": duration_ms(duration_ns),
            "exit_code": None,
            "stdout": None,
            "stderr": None,
            "pid": pid,
            "trace_id": reported,
        }
    else:
        fields = from_wire(report)
    fields["trace_id"] = plan.trace_of(fields.get("trace_id") or trace_id)
    return run.event_from(fields)


def from_wire(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields `to_wire` made plain, as `RunCapture.event_from()` takes them, in place."""
    fields["status"] = ExecutionStatus(fields["status"])
    for name in TIMES:
        value = fields.get(name)
        if value is not None:
            fields[name] = datetime.fromtimestamp(value, UTC)
    return fields
