"""`running` events for runs that last: reported by a daemon thread, not by every task.

Most Celery tasks finish in milliseconds; a `running` event for each would double what the
exporter encodes and sends, and that work competes with the tasks for the GIL. Instead a run
is noted when it starts, and a thread of ours reports `running` for the runs still in flight
`running_after` seconds later (default 1 s). A short task is one event, a long one shows as
running within about a second. The thread is started lazily, again in each forked pool child,
and takes no lock a task could wait on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from chronos_core import ExecutionEvent, ExecutionStatus, RunCapture
from chronos_integrations.celery import _runs
from chronos_integrations.celery._runs import LeanRun, hostname

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
        host=hostname(),
        pid=os.getpid(),
        queue=run.queue,
        worker=run.worker,
        scheduled_for=run.scheduled_for,
    )


class RunningReporter:
    """Reports `running` for the runs in `pending` older than `delay` seconds."""

    def __init__(self, sink: Callable[[], Any], delay: float) -> None:
        self._sink = sink
        self.delay = delay
        # key -> (run, monotonic start); tasks add and remove, the thread pops what is due.
        self.pending: dict[Any, tuple[RunCapture | LeanRun, float]] = {}
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, key: Any, run: RunCapture | LeanRun) -> None:
        """Note a started run (on the task's thread: a dict store, and a pid check)."""
        self.pending[key] = (run, time.monotonic())
        # The pid `_runs` keeps (reset after fork): no system call per task.
        if self._pid != _runs._pid:
            self._start()

    def discard(self, key: Any) -> None:
        """The run ended: no `running` event for it."""
        self.pending.pop(key, None)

    def reset(self) -> None:
        """Forget pending runs (a new pool child)."""
        self.pending = {}

    def stop(self) -> None:
        """Stop the thread (uninstrument)."""
        self._stop.set()

    def _start(self) -> None:
        self._pid = _runs._pid
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="chronos-celery-running", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        stop = self._stop
        tick = min(max(self.delay / 2, 0.05), 0.5)
        while not stop.wait(tick):
            try:
                self._report_due()
            except Exception:
                logger.debug("chronos: could not report running tasks", exc_info=True)

    def _report_due(self) -> None:
        pending = self.pending
        if not pending:
            return
        due = time.monotonic() - self.delay
        sink = self._sink()
        for key, (run, started) in list(pending.items()):
            if started > due or pending.pop(key, None) is None:
                continue
            if run.finished or run.started_at is None or sink is None:
                continue
            sink.record(running_event(run))
