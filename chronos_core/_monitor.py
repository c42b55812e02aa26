"""`@monitor`: every call of a function captured as a run of a job."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, Unpack, cast, overload

from chronos_core._capture import CaptureOptions, RunCapture

__all__ = ["captured_call", "monitor"]

logger = logging.getLogger("chronos_core.capture")

P = ParamSpec("P")
R = TypeVar("R")


@overload
def monitor(job_id: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def monitor(
    job_id: str | None = None, **options: Unpack[CaptureOptions]
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def monitor(
    job_id: str | Callable[..., Any] | None = None, **options: Unpack[CaptureOptions]
) -> Any:
    """Decorate a sync or async function so that every call is captured as a run.

    The job id defaults to the function's `module.qualname`. The function's result and
    exceptions are passed through unchanged. Usable bare (`@monitor`) or with arguments
    (`@monitor("nightly-report", sink=exporter)`).
    """
    if "exec_id" in options:
        raise ValueError("monitor() starts a new run per call; exec_id cannot be fixed")
    settings: dict[str, Any] = dict(options)
    if settings.get("labels") is not None:
        settings["labels"] = tuple(settings["labels"])  # an iterator would last one call
    if callable(job_id):
        return _monitored(job_id, None, settings)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        return _monitored(func, job_id, settings)

    return decorate


def _monitored(func: Callable[P, R], job_id: str | None, options: dict[str, Any]) -> Callable[P, R]:
    name = job_id or f"{func.__module__}.{func.__qualname__}"
    RunCapture(name, **options)  # bad options fail here, when decorating, not per call

    def begin() -> RunCapture | None:
        try:
            return RunCapture(name, **options).start()
        except Exception:
            logger.warning("chronos: could not capture a run of %s", name, exc_info=True)
            return None

    wrapper = captured_call(func, begin, inspect.iscoroutinefunction(func))
    return cast(Callable[P, R], functools.update_wrapper(wrapper, func))


def captured_call(
    func: Callable[..., Any], begin: Callable[[], RunCapture | None], is_coroutine: bool
) -> Callable[..., Any]:
    """`func` with each call captured: `begin()` starts a run (None when the SDK cannot).

    The result and the exception pass through unchanged; `begin` must not raise (callers
    guard it) and `RunCapture.finish` never does. A coroutine function stays one, so an
    event loop (or APScheduler's AsyncIOExecutor) still awaits it. Nothing is copied from
    `func` (no `functools.wraps`): that is for callers who want it.
    """
    if is_coroutine:

        async def run_coroutine(*args: Any, **kwargs: Any) -> Any:
            run = begin()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                if run is not None:
                    run.finish(error=exc)
                raise
            if run is not None:
                run.finish()
            return result

        return run_coroutine

    def run_function(*args: Any, **kwargs: Any) -> Any:
        run = begin()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            if run is not None:
                run.finish(error=exc)
            raise
        if run is not None:
            run.finish()
        return result

    return run_function
