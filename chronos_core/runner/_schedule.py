"""When a job is due: cron schedules evaluated in a time zone, and one-off instants.

Cron expressions are matched against the wall clock of the job's time zone (UTC by
default). Daylight-saving changes make some wall times happen twice and others never; the
rules, also stated in docs/runner.md, are:

* **Repeated wall times** (autumn, clocks go back): a schedule whose hour field is a
  wildcard (`*`, `*/2`, `@hourly`) follows elapsed time and fires at *both* occurrences,
  so `0 * * * *` still runs every real hour. A schedule with fixed hours (`30 1 * * *`)
  names a time of day and fires at the *first* occurrence only.
* **Skipped wall times** (spring, clocks go forward): with a wildcard hour field they do not
  exist and do not fire (`30 * * * *` runs at 01:30 and then 03:30, one hour apart). With
  fixed hours the run happens once, at the instant the clock jumps (a job at 02:30 runs at
  03:00 on the day 02:00-03:00 is skipped).
* An instant never fires twice, whatever the wall times that map to it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

__all__ = ["CronSchedule", "IntervalSchedule", "OneShot", "Schedule", "resolve_timezone"]

# DST offsets change by at most a few hours; walls this far apart cannot swap order.
_SHIFT_WINDOW = timedelta(hours=3)
# Bound on cron candidates examined for one answer (per-second crons near a transition).
_MAX_CANDIDATES = 200_000
_WILDCARD_ALIASES = {"@hourly"}
_FIXED_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"}


def resolve_timezone(value: str | tzinfo | None) -> tzinfo:
    """A `tzinfo` from an IANA name (or a tzinfo); None means UTC."""
    if value is None:
        return UTC
    if isinstance(value, str):
        return UTC if value.upper() == "UTC" else ZoneInfo(value)
    return value


class Schedule(Protocol):
    """Something that says when a job is next due."""

    def next_after(self, instant: datetime) -> datetime | None:
        """The first due instant strictly after `instant` (UTC), or None if never again."""
        ...


class OneShot:
    """A single instant (a one-time job's `runAt`)."""

    def __init__(self, at: datetime) -> None:
        self.at = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)

    def next_after(self, instant: datetime) -> datetime | None:
        """`at` if it is after `instant`."""
        return self.at if self.at > instant else None

    def __repr__(self) -> str:
        return f"OneShot({self.at.isoformat()})"


class CronSchedule:
    """A cron expression (5, 6 or 7 fields, or an `@alias`) in a time zone."""

    def __init__(self, expression: str, timezone: str | tzinfo | None = None) -> None:
        expression = " ".join(expression.split())
        if not expression or not croniter.is_valid(expression):
            raise ValueError(f"not a valid cron expression: {expression!r}")
        self.expression = expression
        self.tz = resolve_timezone(timezone)
        lowered = expression.lower()
        if lowered in _WILDCARD_ALIASES:
            self.follows_elapsed_time = True
        elif lowered in _FIXED_ALIASES:
            self.follows_elapsed_time = False
        else:
            self.follows_elapsed_time = expression.split()[1].startswith("*")

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.tz})"

    def next_after(self, instant: datetime) -> datetime | None:
        """The first instant strictly after `instant` whose wall time matches."""
        after = instant.astimezone(UTC)
        offsets = self._offsets_near(after)
        # Start early enough to see wall times that map to instants after `after` under any
        # offset in force nearby (the second pass through a repeated hour).
        start = _naive(after) + min(offsets)
        try:
            walls = croniter(self.expression, start - timedelta(microseconds=1))
            best: datetime | None = None
            limit: datetime | None = None
            for _ in range(_MAX_CANDIDATES):
                wall: datetime = walls.get_next(datetime)
                if limit is not None and wall > limit:
                    break
                for candidate in self._instants(wall):
                    if candidate > after and (best is None or candidate < best):
                        best = candidate
                        # A wall time W maps to W - offset; once W - max(offset) passes the
                        # best instant, no later wall can beat it.
                        limit = _naive(best) + max(self._offsets_near(best))
        except CroniterBadDateError:  # e.g. "0 0 30 2 *": no such date, ever
            return None
        return best

    def _offsets_near(self, instant: datetime) -> list[timedelta]:
        return [
            (instant + delta).astimezone(self.tz).utcoffset() or timedelta(0)
            for delta in (-_SHIFT_WINDOW, timedelta(0), _SHIFT_WINDOW)
        ]

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants a matching wall time fires at, per the DST rules above."""
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first < second:  # the wall time happens twice
            return [first, second] if self.follows_elapsed_time else [first]
        # The wall time is skipped: `second` is before the jump, `first` after it.
        if self.follows_elapsed_time:
            return []
        return [self._transition(second, first)]

    def _transition(self, before: datetime, after: datetime) -> datetime:
        """The instant in (before, after] where the offset changes, to the second."""
        offset = before.astimezone(self.tz).utcoffset()
        low, high = before, after
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.tz).utcoffset() == offset:
                low = middle
            else:
                high = middle
        return high.replace(microsecond=0)


def _naive(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


class IntervalSchedule:
    """Every `seconds`, counted from `anchor` (a job registered with `intervalSeconds`)."""

    def __init__(self, seconds: float, anchor: datetime) -> None:
        if seconds <= 0:
            raise ValueError(f"an interval must be > 0 seconds, got {seconds}")
        self.period = timedelta(seconds=seconds)
        self.anchor = anchor.astimezone(UTC)

    def next_after(self, instant: datetime) -> datetime | None:
        """The first `anchor + k * period` after `instant`."""
        if instant < self.anchor:
            return self.anchor
        elapsed = (instant - self.anchor) // self.period
        return self.anchor + (elapsed + 1) * self.period

    def __repr__(self) -> str:
        return f"IntervalSchedule({self.period.total_seconds():g}s)"
