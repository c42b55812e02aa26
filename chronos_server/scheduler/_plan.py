"""Which registered jobs the server schedules, and when each is due.

The due times come from the runner's own schedule code (`chronos_core.runner._schedule`), so a
job fires at the same instants whether a runner schedules it locally or the server triggers
it, DST rules included. Differences, all because the server must agree with itself across
processes and restarts: an `intervalSeconds` job is aligned to the Unix epoch (not to when a
runner started), and a one-time job is armed when the scheduler first sees its definition.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from chronos_core._models import JobDefinition, RunMode, Source
from chronos_core.runner._schedule import CronSchedule, IntervalSchedule, OneShot, Schedule

__all__ = ["SCHEDULED_SOURCES", "JobPlan", "arming_of", "missed_exec_id", "trigger_id_for"]

SCHEDULED_SOURCES: frozenset[Source | None] = frozenset({None, Source.RUNNER})
"""Jobs registered by a runner or by an original-contract client. Celery, APScheduler, RQ and
`chronos exec` jobs are scheduled by their own scheduler and never by the server."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def arming_of(job: JobDefinition) -> str:
    """Hash of what decides when a one-time job fires: changing any of it re-arms the job."""
    run_at = _epoch_ms(job.run_at) if job.run_at is not None else None
    key = [job.schedule, job.run_mode.value, run_at, job.timezone]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def trigger_id_for(job_id: str, due: datetime, arming: str | None = None) -> str:
    """The trigger id of a due time: the same in every server process, after any restart.

    `<jobId>:<epoch ms>` (the contract's execution id shape); a one-time job's adds the
    first characters of its arming so that a re-armed job at the same instant fires again.
    """
    base = f"{job_id}:{_epoch_ms(due)}"
    return f"{base}:{arming[:8]}" if arming else base


def missed_exec_id(trigger_id: str) -> str:
    """The execution id of a trigger recorded as missed (deterministic: stored once)."""
    return f"{trigger_id}:missed"


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A job's schedule as the server evaluates it."""

    tenant: str
    job: JobDefinition
    schedule: Schedule
    once: bool
    arming: str
    """For one-time jobs, `arming_of(job)`; empty for recurring ones."""

    @classmethod
    def of(cls, tenant: str, job: JobDefinition) -> JobPlan | None:
        """The plan of a job the server schedules, or None (other source, nothing to run)."""
        if job.source not in SCHEDULED_SOURCES:
            return None
        once = job.run_mode is RunMode.ONCE
        schedule: Schedule
        try:
            if job.schedule:
                schedule = CronSchedule(job.schedule, job.timezone)
            elif once and job.run_at is not None:
                schedule = OneShot(job.run_at)
            elif job.interval_seconds:
                schedule = IntervalSchedule(job.interval_seconds, _EPOCH)
            else:
                return None
        except ValueError:
            return None
        return cls(tenant, job, schedule, once, arming_of(job) if once else "")

    @property
    def key(self) -> str:
        """What identifies this plan: a changed definition is a new plan."""
        job = self.job
        run_at = _epoch_ms(job.run_at) if job.run_at is not None else None
        return json.dumps(
            [job.schedule, job.run_mode.value, run_at, job.timezone, job.interval_seconds]
        )

    def due_between(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Due instants in (`after`, `until`], at most the last `limit` of them."""
        found: list[datetime] = []
        cursor = after
        while True:
            due = self.schedule.next_after(cursor)
            if due is None or due > until:
                return found[-limit:]
            found.append(due)
            if len(found) > 4 * limit:
                found = found[-limit:]
            cursor = due

    def once_due(self, armed_at: datetime) -> datetime | None:
        """A one-time job's single due instant: `runAt`, or the first cron match after arming."""
        if isinstance(self.schedule, OneShot):
            return self.schedule.at
        return self.schedule.next_after(armed_at)

    def trigger_id(self, due: datetime) -> str:
        """The trigger id of `due` for this job."""
        return trigger_id_for(self.job.id, due, self.arming or None)
