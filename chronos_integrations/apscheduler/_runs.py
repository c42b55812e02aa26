"""The wrapper that turns each call of an APScheduler job function into one captured run.

APScheduler 3 only tells listeners about a run after the fact (`EVENT_JOB_EXECUTED` /
`EVENT_JOB_ERROR` carry no start time, no output and a pre-formatted traceback), so exact
timing, stdout/stderr and the failing user frame need code around the call itself. The
executor's `submit_job(job, run_times)` is given a shallow copy of the job whose `func` is
wrapped: the stored job, its jobstore and its `func_ref` are untouched (a SQLAlchemy or
Redis jobstore never sees the wrapper), and executors call `job.func(*args, **kwargs)`
exactly as before, coroutine jobs included (the wrapper of a coroutine function is itself
a coroutine function, so `AsyncIOExecutor` still runs it on the loop).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chronos_core._monitor import captured_call

if TYPE_CHECKING:
    from chronos_core import RunCapture

__all__ = ["RunTimes", "clone_job", "wrap_function"]

logger = logging.getLogger("chronos_integrations.apscheduler")

# run_job() decides a run time was not missed just before calling the function; by the
# time the wrapper checks, a little more time has passed. This slack keeps both in step.
_MISFIRE_SLACK = timedelta(seconds=1)


class RunTimes:
    """Which scheduled time each call of the function serves, in the order run_job() uses.

    run_job() walks `run_times` in order and skips those past `misfire_grace_time`; each
    call of the function is for the next one it did not skip.
    """

    __slots__ = ("_grace", "_pending")

    def __init__(self, run_times: list[datetime], grace_seconds: float | None) -> None:
        self._pending = list(run_times)
        self._grace = grace_seconds

    def next(self) -> datetime | None:
        """The scheduled time of the call starting now."""
        pending = self._pending
        if len(pending) <= 1:  # the usual case: one run time, nothing to decide
            return pending.pop() if pending else None
        now = datetime.now(UTC)
        grace = None if self._grace is None else timedelta(seconds=self._grace) + _MISFIRE_SLACK
        while len(pending) > 1:
            run_time = pending.pop(0)
            if grace is None or now - run_time <= grace:
                return run_time
        return pending.pop()


Begin = Callable[[datetime | None], "RunCapture | None"]


def wrap_function(
    func: Callable[..., Any], is_coroutine: bool, begin: Begin, times: RunTimes
) -> Any:
    """`func` with each call captured; the result and the exception pass through unchanged.

    `begin(scheduled_for)` starts a run (or returns None when the SDK cannot); it is
    guarded by the caller, and `RunCapture.finish` never raises.
    """
    # No functools.wraps: executors only call the function (and it would cost a few µs per
    # run); APScheduler logs the job's name, which the copy keeps.
    return captured_call(func, lambda: begin(times.next()), is_coroutine)


@functools.cache
def _job_slots(job_type: Any) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    names: list[str] = []
    for klass in job_type.__mro__:
        for name in getattr(klass, "__slots__", ()):
            if name not in ("__weakref__", "__dict__") and name not in names:
                names.append(name)
    return tuple(names), operator.attrgetter(*names)


def clone_job(job: Any, func: Callable[..., Any] | Coroutine[Any, Any, Any]) -> Any:
    """A shallow copy of an APScheduler `Job` with another `func`; the original is untouched.

    `Job` has `__slots__` and a `__getstate__` that refuses jobs without a `func_ref`, so
    neither `copy.copy` nor `__dict__` works: the slots are copied one by one.
    """
    job_type: Any = type(job)
    clone = object.__new__(job_type)
    setter = object.__setattr__
    names, read_all = _job_slots(job_type)
    try:
        values = read_all(job)  # one C call for every slot of a submitted job
    except AttributeError:  # a slot never set: copy the others one by one
        for name in names:
            with contextlib.suppress(AttributeError):
                setter(clone, name, getattr(job, name))
    else:
        for name, value in zip(names, values, strict=True):
            setter(clone, name, value)
    state = getattr(job, "__dict__", None)
    if state:
        clone.__dict__.update(state)
    setter(clone, "func", func)
    return clone
