"""APScheduler triggers as Chronos schedules.

`CronTrigger` → a 5-field cron string (minute hour day month day-of-week) in the trigger's
time zone; `IntervalTrigger` → `intervalSeconds`; `DateTrigger` → `runMode: once` with `runAt`.

Two numbering traps are handled here. APScheduler counts weekdays from Monday (`mon=0 …
sun=6`, the `datetime.weekday()` convention) while cron counts from Sunday (`0=sun … 6=sat`),
so `day_of_week` is rebuilt value by value, never copied; a step such as `*/2` means
Mon/Wed/Fri/Sun in APScheduler and Sun/Tue/Thu/Sat in cron. And APScheduler combines
`day` and `day_of_week` with AND where cron uses OR, so when both are restricted only the
combinations cron can say exactly are kept (`day=1-7` with a weekday is `#1`, ...), otherwise
the weekday wins and the description says so.

What cron cannot express (seconds other than 0, `year`, `week`, jitter) is dropped from the
cron string and named in the description, so the registered schedule fires at least as often
as the job's minute, never at a minute the job does not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

__all__ = ["ScheduleInfo", "cron_weekdays", "schedule_of", "zone_name"]

_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINIMUM = {"minute": 0, "hour": 0, "day": 1, "month": 1, "day_of_week": 0}
_MAXIMUM = {"minute": 59, "hour": 23, "day": 31, "month": 12, "day_of_week": 6}


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """The schedule fields of a `JobDefinition` for one APScheduler trigger."""

    schedule: str = ""
    run_mode: str = "recurring"
    timezone: str | None = None
    interval_seconds: float | None = None
    run_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def registrable(self) -> bool:
        """Whether the server can take it (a recurring job needs a cron or an interval)."""
        if self.run_mode == "once":
            return bool(self.schedule) or self.run_at is not None
        return bool(self.schedule) or bool(self.interval_seconds)


def zone_name(zone: tzinfo | None) -> str | None:
    """The IANA name of a zoneinfo, pytz or dateutil zone; None for fixed offsets."""
    if zone is None:
        return None
    for attribute in ("key", "zone"):
        name = getattr(zone, attribute, None)
        if isinstance(name, str) and name:
            return name
    text = str(zone)
    return "UTC" if text in ("UTC", "utc", "UTC+00:00") else None


def schedule_of(trigger: Any) -> ScheduleInfo:
    """Describe a trigger; unknown trigger types give an unregistrable `ScheduleInfo`."""
    kind = type(trigger).__name__
    if kind == "CronTrigger":
        return _cron_schedule(trigger)
    if kind == "IntervalTrigger":
        interval: timedelta = trigger.interval
        notes = _jitter_note(trigger)
        return ScheduleInfo(
            interval_seconds=interval.total_seconds(),
            timezone=zone_name(getattr(trigger, "timezone", None)),
            notes=notes,
        )
    if kind == "DateTrigger":
        return ScheduleInfo(run_mode="once", run_at=trigger.run_date)
    return ScheduleInfo(notes=(f"trigger {trigger} has no cron equivalent",))


def _jitter_note(trigger: Any) -> tuple[str, ...]:
    jitter = getattr(trigger, "jitter", None)
    return (f"jitter up to {jitter}s",) if jitter else ()


def _cron_schedule(trigger: Any) -> ScheduleInfo:
    fields = {f.name: f for f in trigger.fields}
    notes: list[str] = list(_jitter_note(trigger))
    for name in ("year", "week"):
        if str(fields[name]) != "*":
            notes.append(f"{name}={fields[name]} is not expressible in cron")
    second = str(fields["second"])
    if second != "0":
        notes.append(f"second={second} (cron has minute resolution)")
    minute = _plain_field(fields["minute"])
    hour = _plain_field(fields["hour"])
    month = _plain_field(fields["month"])
    day, weekday_from_day = _day_field(fields["day"])
    weekdays = cron_weekdays(fields["day_of_week"])
    if weekday_from_day is not None:
        if weekdays != "*":
            notes.append(f"day_of_week={fields['day_of_week']} dropped: day={fields['day']} wins")
        weekdays = weekday_from_day
    elif day != "*" and weekdays != "*":
        # APScheduler wants both to match (AND); cron would fire when either does (OR).
        position = _week_position(fields["day"], weekdays)
        if position is not None:
            day, weekdays = "*", position
        else:
            notes.append(f"day={fields['day']} AND day_of_week: cron keeps only the weekday")
            day = "*"
    cron = f"{minute} {hour} {day} {month} {weekdays}"
    return ScheduleInfo(
        schedule=cron, timezone=zone_name(getattr(trigger, "timezone", None)), notes=tuple(notes)
    )


def _plain_field(cron_field: Any) -> str:
    """minute, hour, day and month: APScheduler's syntax is cron's, but for month names and
    `first/step` without a last value (cron wants `first-max/step`)."""
    return ",".join(_plain_expression(e, cron_field.name) for e in cron_field.expressions)


def _plain_expression(expression: Any, name: str) -> str:
    first = getattr(expression, "first", None)
    if first is None:  # AllExpression: `*` or `*/step`, the same in cron
        return str(expression)
    last, step = expression.last, expression.step
    if last is None:
        last = _MAXIMUM[name]
    text = str(first) if last == first else f"{first}-{last}"
    return f"{text}/{step}" if step else text


def _day_field(cron_field: Any) -> tuple[str, str | None]:
    """The day-of-month field; `1st mon`/`last fri` become a cron weekday (second value)."""
    parts: list[str] = []
    for expression in cron_field.expressions:
        kind = type(expression).__name__
        if kind == "LastDayOfMonthExpression":
            parts.append("L")
        elif kind == "WeekdayPositionExpression":
            weekday = (expression.weekday + 1) % 7
            if expression.option_num == 5:  # "last"
                return "*", f"L{weekday}"
            return "*", f"{weekday}#{expression.option_num + 1}"
        else:
            parts.append(_plain_expression(expression, "day"))
    return ",".join(parts), None


def _week_position(day_field: Any, weekdays: str) -> str | None:
    """`day=1-7` AND one weekday is that weekday's first occurrence (`#1`), and so on."""
    expressions = day_field.expressions
    if len(expressions) != 1 or type(expressions[0]).__name__ != "RangeExpression":
        return None
    expression = expressions[0]
    if expression.step or not weekdays.isdigit():
        return None
    first, last = expression.first, expression.last
    if last is None or last - first != 6 or (first - 1) % 7 or first > 22:
        return None
    return f"{weekdays}#{(first - 1) // 7 + 1}"


def cron_weekdays(day_of_week_field: Any) -> str:
    """APScheduler's `day_of_week` (mon=0 … sun=6) as cron's (sun=0 … sat=6)."""
    days: set[int] = set()
    low, high = _MINIMUM["day_of_week"], _MAXIMUM["day_of_week"]
    for expression in day_of_week_field.expressions:
        # AllExpression has no bounds; `first/step` (no last) runs to the end of the week.
        first = getattr(expression, "first", None)
        last = getattr(expression, "last", None)
        start = low if first is None else first
        stop = high if last is None else last
        days.update(range(start, stop + 1, expression.step or 1))
    if days >= set(range(7)):
        return "*"
    return _compress(sorted((day + 1) % 7 for day in days))


def _compress(values: list[int]) -> str:
    """`[1, 2, 3, 5]` → `1-3,5`."""
    parts: list[str] = []
    run_start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(run_start) if run_start == previous else f"{run_start}-{previous}")
        if value is not None:
            run_start = previous = value
    return ",".join(parts)
