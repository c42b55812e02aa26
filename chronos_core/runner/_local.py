"""Local trigger mode: the runner schedules its own jobs with cron, no server needed.

One thread sleeps on the clock until the earliest due time, hands every due job to the
executor, and computes each job's next due time. Telemetry is buffered by the exporter, so
the jobs run on time while the server is away.

If the runner could not fire for a while (the process was suspended, the clock jumped), a
job that became due several times runs once, for the latest due time, with the number of
folded due times in the run's `coalesced` metadata. A one-time job whose `runAt` passed more
than `misfire_grace` seconds before the runner could fire it is not run (it may have run in
an earlier process; the runner keeps no state on disk).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from chronos_core._models import RunMode
from chronos_core.runner._clock import Clock
from chronos_core.runner._execution import JobSpec, RunExecutor, RunRequest
from chronos_core.runner._schedule import CronSchedule, IntervalSchedule, OneShot, Schedule

__all__ = ["LocalScheduler", "schedule_of"]

logger = logging.getLogger("chronos_core.runner")

# Due times folded into one run before the scheduler gives up counting and jumps to now.
_MAX_COALESCED = 10_000
# How long the scheduler sleeps when no job is due at all; a new job wakes it anyway.
_IDLE_SLEEP = timedelta(hours=1)


def schedule_of(job: JobSpec, default_timezone: tzinfo, now: datetime) -> Schedule | None:
    """The local schedule of a job, or None if its definition gives no time to run it."""
    definition = job.definition
    if definition is None:
        return None
    zone = definition.timezone or default_timezone
    if definition.schedule:
        return CronSchedule(definition.schedule, zone)
    if definition.run_mode is RunMode.ONCE and definition.run_at is not None:
        return OneShot(definition.run_at)
    if definition.interval_seconds:
        return IntervalSchedule(definition.interval_seconds, now)
    return None


@dataclass(eq=False)
class _Entry:
    job: JobSpec
    schedule: Schedule
    once: bool
    next_due: datetime | None


class LocalScheduler:
    """Fires the runner's jobs at their due times, on a clock that tests can replace."""

    def __init__(
        self,
        executor: RunExecutor,
        clock: Clock,
        *,
        default_timezone: tzinfo,
        misfire_grace: float,
    ) -> None:
        self._executor = executor
        self._clock = clock
        self._default_timezone = default_timezone
        self._misfire_grace = timedelta(seconds=misfire_grace)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, job: JobSpec) -> bool:
        """Schedule `job` (replacing its earlier schedule); False if it has no schedule."""
        now = self._clock.now()
        schedule = schedule_of(job, self._default_timezone, now)
        with self._lock:
            if schedule is None:
                self._entries.pop(job.job_id, None)
                return False
            once = job.definition is not None and job.definition.run_mode is RunMode.ONCE
            first = schedule.at if isinstance(schedule, OneShot) else schedule.next_after(now)
            self._entries[job.job_id] = _Entry(job, schedule, once, first)
        self._wake.set()
        return True

    def next_due(self, job_id: str) -> datetime | None:
        """When the job is next due, or None."""
        with self._lock:
            entry = self._entries.get(job_id)
            return entry.next_due if entry is not None else None

    def start(self) -> None:
        """Start the scheduling thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="chronos-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Fire nothing more; wait for the thread to end."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                deadline = self._fire_due()
            except Exception:
                logger.warning("chronos: the scheduler failed; retrying in 1s", exc_info=True)
                deadline = self._clock.now() + timedelta(seconds=1)
            if self._stop.is_set():
                return
            self._clock.wait_until(deadline, self._wake)

    def _fire_due(self) -> datetime:
        """Submit every due job; return when to look again."""
        now = self._clock.now()
        requests = []
        with self._lock:
            for entry in self._entries.values():
                if entry.next_due is not None and entry.next_due <= now:
                    request = self._advance(entry, now)
                    if request is not None:
                        requests.append(request)
            upcoming = [e.next_due for e in self._entries.values() if e.next_due is not None]
        for request in requests:
            self._executor.submit(request)
        return min(upcoming, default=now + _IDLE_SLEEP)

    def _advance(self, entry: _Entry, now: datetime) -> RunRequest | None:
        due = entry.next_due
        assert due is not None
        if isinstance(entry.schedule, OneShot):
            entry.next_due = None
            if now - due > self._misfire_grace:
                logger.warning(
                    "chronos: %s was due at %s, %s ago; a one-time job that late is not run",
                    entry.job.job_id,
                    due.isoformat(),
                    now - due,
                )
                return None
            return RunRequest(entry.job, due)
        coalesced = 0
        following = entry.schedule.next_after(due)
        while following is not None and following <= now:
            coalesced += 1
            if coalesced >= _MAX_COALESCED:
                due, following = now, entry.schedule.next_after(now)
                break
            due, following = following, entry.schedule.next_after(following)
        entry.next_due = None if entry.once else following
        if coalesced:
            logger.info(
                "chronos: %s was due %d more time(s) while the runner could not fire",
                entry.job.job_id,
                coalesced,
            )
        return RunRequest(entry.job, due, coalesced=coalesced)
