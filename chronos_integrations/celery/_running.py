"""`running` events for runs that last: reported by a daemon thread, not by every task.

Most Celery tasks finish in milliseconds; a `running` event for each would double what the
exporter encodes and sends, and that work competes with the tasks for the GIL. Instead a
thread of ours looks at the runs in flight (the task hooks' own dict, copied in one step)
every half `running_after` seconds (default 1 s) and reports `running` for those that started
more than `running_after` ago and that it has not reported yet. A task does nothing for it
(no bookkeeping as it starts or ends); a short task is one event, a long one shows as running
within about a second and a half. The thread is started lazily, again in each forked pool
child, and takes no lock a task could wait on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from chronos_core import ExecutionEvent, ExecutionStatus, RunCapture
from chronos_core._capture import _hostname
from chronos_integrations.celery import _runs
from chronos_integrations.celery._runs import LeanRun

__all__ = ["DEFAULT_RUNNING_AFTER", "RunningReporter"]

logger = logging.getLogger("chronos_integrations.celery")

DEFAULT_RUNNING_AFTER = 1.0


def running_event(run: RunCapture | LeanRun) -> ExecutionEvent:
    """The `running` event of a started run, from its public attributes."""
    return ExecutionEvent(
        exec_id=run.exec_id,
        job_id=run.job_id,
        status=ExecutionStatus.RUNNING,
        started_at=run.started_at,
        attempt=run.attempt,
        labels=list(run.labels),
        job_version=run.job_version,
        app_version=run.app_version,
        source=run.source,
        host=_hostname(),
        pid=os.getpid(),
        queue=run.queue,
        worker=run.worker,
        scheduled_for=run.scheduled_for,
    )


def _started_before(run: RunCapture | LeanRun, perf_ns: int, wall: float) -> bool:
    if isinstance(run, LeanRun):
        return run.started_before(perf_ns)
    started = run.started_at
    return started is not None and started.timestamp() < wall


class RunningReporter:
    """Reports `running` for the runs in flight that started more than `delay` seconds ago."""

    def __init__(self, sink: Callable[[], Any], delay: float) -> None:
        self._sink = sink
        self.delay = delay
        # What the thread scans: the runs in flight (a snapshot), given by `start`.
        self._runs: Callable[[], list[RunCapture | LeanRun]] = list
        # The runs reported and still in flight, by identity (they are kept alive here).
        self._reported: dict[int, RunCapture | LeanRun] = {}
        # The process the thread runs in (0: none yet).
        self.pid = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, runs: Callable[[], list[RunCapture | LeanRun]]) -> None:
        """Start the thread in this process; it scans what `runs()` returns."""
        self._runs = runs
        self.pid = _runs._pid
        self._reported = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="chronos-celery-running", daemon=True
        )
        self._thread.start()

    def reset(self) -> None:
        """Forget the runs reported (a new pool child)."""
        self._reported = {}

    def stop(self) -> None:
        """Stop the thread (uninstrument)."""
        self._stop.set()

    def _loop(self) -> None:
        stop = self._stop
        tick = min(max(self.delay / 2, 0.05), 0.5)
        while not stop.wait(tick):
            try:
                self._report_due()
            except Exception:
                logger.debug("chronos: could not report running tasks", exc_info=True)

    def _report_due(self) -> None:
        runs = self._runs()
        reported = self._reported
        if not runs and not reported:
            return
        perf_due = time.perf_counter_ns() - int(self.delay * 1e9)
        wall_due = time.time() - self.delay
        still: dict[int, RunCapture | LeanRun] = {}
        sink: Any = None
        for run in runs:
            key = id(run)
            if key in reported:
                still[key] = run
                continue
            if run.finished or not _started_before(run, perf_due, wall_due):
                continue
            still[key] = run
            if sink is None:
                sink = self._sink()
                if sink is None:
                    continue
            sink.record(running_event(run))
        self._reported = still
