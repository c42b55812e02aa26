"""Turning Celery beat entries into `JobDefinition`s.

Celery's `crontab(minute, hour, day_of_week, day_of_month, month_of_year)` differs from a cron
line in three ways that matter here: the field order, the keyword arguments, and the meaning of
a restricted day of month *and* day of week. Celery requires both to match ("the first Monday":
`day_of_week=1, day_of_month="1-7"`), cron fires when either matches. The conversion works on
the sets Celery expanded (so names, ranges and steps are already resolved) and writes them back
in cron's order; both-restricted days become cron's `weekday#n` form when they are whole weeks
of the month, and are otherwise reported as not convertible.

Intervals (`schedule`, `timedelta`, a number of seconds) become `intervalSeconds`. A `solar`
schedule happens once a day at a moving time of day: it is registered with a 24-hour interval
and a description saying so, because a recurring job needs a cron or an interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celery.schedules import crontab, maybe_schedule, schedule, solar

from chronos_core import JobDefinition, RunMode, Source

__all__ = [
    "BeatEntry",
    "NotConvertible",
    "cron_from_crontab",
    "entries_from_mapping",
    "entries_from_scheduler",
    "entry_job_ids",
    "job_definition",
]

logger = logging.getLogger("chronos_integrations.celery")

_SOLAR_INTERVAL = 86_400.0
# Week-of-month blocks of day_of_month that cron's `weekday#n` stands for.
_NTH_WEEK = {
    frozenset(range(1, 8)): 1,
    frozenset(range(8, 15)): 2,
    frozenset(range(15, 22)): 3,
    frozenset(range(22, 29)): 4,
    frozenset(range(29, 32)): 5,
}


@dataclass(frozen=True, slots=True)
class BeatEntry:
    """What registration needs to know about one beat entry."""

    name: str
    task: str
    schedule: Any


class NotConvertible(ValueError):
    """A Celery schedule that no cron string or interval describes exactly."""


def _field(values: Iterable[int], low: int, high: int) -> str:
    """Cron text for a set of values in [low, high]: `*`, `*/n`, ranges and lists."""
    ordered = sorted(set(values))
    if ordered == list(range(low, high + 1)):
        return "*"
    if len(ordered) > 2 and ordered[0] == low:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(low, high + 1, step)):
            return f"*/{step}"
    parts: list[str] = []
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


def _days(cron: crontab) -> tuple[str, str]:
    """(day of month, day of week) fields, with Celery's AND made explicit."""
    dom, dow = set(cron.day_of_month), set(cron.day_of_week)
    dom_all, dow_all = dom == set(range(1, 32)), dow == set(range(7))
    if dom_all or dow_all:
        return _field(dom, 1, 31), _field(dow, 0, 6)
    weeks: list[int] = []
    remaining = set(dom)
    for block, nth in _NTH_WEEK.items():
        if block <= remaining:
            weeks.append(nth)
            remaining -= block
    if remaining or not weeks:
        raise NotConvertible(
            f"day_of_month={sorted(dom)} together with day_of_week={sorted(dow)}: Celery "
            "requires both to match, cron fires when either does"
        )
    return "*", ",".join(f"{day}#{nth}" for nth in weeks for day in sorted(dow))


def cron_from_crontab(cron: crontab) -> str:
    """The standard five-field cron string of a Celery crontab.

    Raises `NotConvertible` when no cron string has the same firing times.
    """
    day_of_month, day_of_week = _days(cron)
    return " ".join(
        (
            _field(cron.minute, 0, 59),
            _field(cron.hour, 0, 23),
            day_of_month,
            _field(cron.month_of_year, 1, 12),
            day_of_week,
        )
    )


def _timezone(app: Any) -> str:
    return str(getattr(app.conf, "timezone", None) or "UTC")


def job_definition(
    entry: BeatEntry, job_id: str, app: Any, *, version: str | None = None
) -> JobDefinition | None:
    """The job of one beat entry, or None (logged) when its schedule cannot be described."""
    try:
        sched = maybe_schedule(entry.schedule, app=app)
    except Exception:
        logger.warning("chronos: beat entry %r has an unreadable schedule", entry.name)
        return None
    common: dict[str, Any] = {
        "id": job_id,
        "name": entry.name,
        "run_mode": RunMode.RECURRING,
        "version": version,
        "source": Source.CELERY,
    }
    try:
        if isinstance(sched, crontab):
            return JobDefinition(
                schedule=cron_from_crontab(sched),
                timezone=_timezone(app),
                description=f"celery beat: {entry.task} {sched!r}"[:8000],
                **common,
            )
        if isinstance(sched, solar):
            return JobDefinition(
                interval_seconds=_SOLAR_INTERVAL,
                description=(
                    f"celery beat: {entry.task} at {sched.event} for latitude {sched.lat}, "
                    f"longitude {sched.lon}: once a day, at a time of day that moves with "
                    "the seasons (registered as a 24-hour interval)"
                ),
                **common,
            )
        if isinstance(sched, schedule):
            seconds = sched.run_every.total_seconds()
            return JobDefinition(
                interval_seconds=seconds,
                description=f"celery beat: {entry.task} every {seconds:g}s",
                **common,
            )
    except NotConvertible as exc:
        logger.warning("chronos: beat entry %r is not registered: %s", entry.name, exc)
        return None
    except ValueError as exc:
        logger.warning("chronos: beat entry %r could not be registered: %s", entry.name, exc)
        return None
    logger.warning(
        "chronos: beat entry %r has a custom schedule type %s; not registered",
        entry.name,
        type(sched).__name__,
    )
    return None


def entry_job_ids(
    entries: Iterable[BeatEntry], job_id_of_task: Callable[[str], str]
) -> dict[str, str]:
    """Job id of each entry: its task's job id, or `<job id>:<entry name>` when shared.

    Two entries that run the same task on different schedules are two jobs to monitor.
    """
    entries = list(entries)
    by_task = {entry.name: job_id_of_task(entry.task) for entry in entries}
    counts: dict[str, int] = {}
    for job_id in by_task.values():
        counts[job_id] = counts.get(job_id, 0) + 1
    return {
        name: job_id if counts[job_id] == 1 else f"{job_id}:{name}"
        for name, job_id in by_task.items()
    }


def entries_from_mapping(beat_schedule: Mapping[str, Any]) -> list[BeatEntry]:
    """Entries of `app.conf.beat_schedule` (dicts with `task` and `schedule`)."""
    found = []
    for name, spec in (beat_schedule or {}).items():
        try:
            found.append(BeatEntry(name=str(name), task=spec["task"], schedule=spec["schedule"]))
        except (KeyError, TypeError):
            logger.warning("chronos: beat_schedule entry %r has no task or schedule", name)
    return found


def entries_from_scheduler(scheduler_schedule: Mapping[str, Any]) -> list[BeatEntry]:
    """Entries of a running scheduler's `schedule` (`ScheduleEntry` objects; any scheduler)."""
    found = []
    for name, entry in (scheduler_schedule or {}).items():
        task, sched = getattr(entry, "task", None), getattr(entry, "schedule", None)
        if not task or sched is None or str(task).startswith("celery."):
            continue  # celery.backend_cleanup and other built-ins are not the user's jobs
        found.append(BeatEntry(name=str(name), task=str(task), schedule=sched))
    return found
