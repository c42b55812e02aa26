"""When a job runs next, from its cron schedule (in its time zone), interval or `runAt`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from chronos_core._models import JobDefinition, RunMode

__all__ = ["NextRunCache", "next_run"]


def _next_cron(schedule: str, timezone: str | None, after: datetime) -> datetime:
    # croniter walks wall-clock time in the zone of its start, so "0 9 * * *" in Europe/Paris
    # is 08:00 UTC in winter and 07:00 UTC in summer, and the DST change is crossed correctly.
    # When clocks go back, a wall-clock time happens twice; like cron, run at the first only.
    zone = ZoneInfo(timezone) if timezone else UTC
    times = croniter(schedule, after.astimezone(zone))
    while True:
        found: datetime = times.get_next(datetime)
        local = found.astimezone(zone)
        if not (local.fold == 1 and _ambiguous(local)):
            return found.astimezone(UTC)


def _ambiguous(local: datetime) -> bool:
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


def next_run(
    job: JobDefinition, *, after: datetime, last_run: datetime | None = None
) -> datetime | None:
    """The first time strictly after `after` that the job is due, or None if it is not.

    A one-time job that already ran is not due again; one with `runAt` is due then (even if
    that moment passed without a run: it is overdue). An interval job is due `interval` after
    its last run.
    """
    if job.run_mode is RunMode.ONCE:
        if last_run is not None:
            return None
        if not job.schedule:
            return job.run_at
        return _next_cron(job.schedule, job.timezone, after)
    if job.schedule:
        return _next_cron(job.schedule, job.timezone, after)
    if job.interval_seconds:
        interval = timedelta(seconds=job.interval_seconds)
        if last_run is None:
            return after
        due = last_run + interval
        if due <= after:
            # Missed ticks are not queued up: the next one is the first in the future.
            missed = (after - due) // interval + 1
            due += missed * interval
        return due
    return None


class NextRunCache:
    """Remembers the next fire time of each schedule; parsing a cron costs ~0.5 ms.

    An entry computed at `t` with answer `n` stays right for any `after` in [t, n): nothing
    fires in between. Only cron schedules are cached (the others are cheap).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str | None], tuple[datetime, datetime]] = {}

    def next_run(
        self, job: JobDefinition, *, after: datetime, last_run: datetime | None = None
    ) -> datetime | None:
        """`next_run`, from the cache when it can."""
        if job.run_mode is RunMode.ONCE or not job.schedule:
            return next_run(job, after=after, last_run=last_run)
        key = (job.schedule, job.timezone)
        cached = self._entries.get(key)
        if cached is not None and cached[0] <= after < cached[1]:
            return cached[1]
        found = _next_cron(job.schedule, job.timezone, after)
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (after, found)
        return found
