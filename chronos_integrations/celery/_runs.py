"""Building the record of one task run from what Celery knows about it.

`RunFactory` holds the user's choices (job ids, console capture, arguments) and turns a task
and its request into a started `RunCapture` in the process that runs the task, or into a final
`ExecutionEvent` in a worker's main process for runs its pool child could not report (a hard
time limit, a terminated or revoked task).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.utils.saferepr import saferepr

from chronos_core import (
    ExecutionEvent,
    ExecutionStatus,
    Redactor,
    RunCapture,
    Source,
    detect_app_version,
    truncate_text,
)
from chronos_core._models import parse_timestamp

__all__ = [
    "HEADER_BEAT_ENTRY",
    "HEADER_JOB_ID",
    "HEADER_SCHEDULED_FOR",
    "RunFactory",
    "attempt_of",
    "exec_id_of",
    "hostname",
]

logger = logging.getLogger("chronos_integrations.celery")

# Message headers stamped on runs sent by beat; Celery turns them into request attributes.
HEADER_JOB_ID = "chronos_job_id"
HEADER_SCHEDULED_FOR = "chronos_scheduled_for"
HEADER_BEAT_ENTRY = "chronos_beat_entry"


def attempt_of(request: Any) -> int:
    """Attempt number of a request: Celery counts retries from 0, attempts count from 1."""
    try:
        return int(getattr(request, "retries", 0) or 0) + 1
    except (TypeError, ValueError):
        return 1


def exec_id_of(task_id: str, attempt: int) -> str:
    """The task id for the first attempt, `<task id>:<attempt>` for each retry."""
    return task_id if attempt <= 1 else f"{task_id}:{attempt}"


def _scheduled_for(request: Any) -> datetime | None:
    value = getattr(request, HEADER_SCHEDULED_FOR, None)
    if not value:
        return None
    try:
        parsed = parse_timestamp(value)
        if isinstance(parsed, str):
            parsed = datetime.fromisoformat(parsed)
        return parsed if isinstance(parsed, datetime) else None
    except ValueError:
        return None


def _queue(request: Any) -> str | None:
    info = getattr(request, "delivery_info", None) or {}
    queue = info.get("routing_key") or info.get("queue")
    return str(queue) if queue else None


class RunFactory:
    """Makes runs of tasks; one per instrumented app."""

    def __init__(
        self,
        *,
        sink: Callable[[], Any],
        job_id: Callable[[Any], str | None] | None,
        capture_console: bool,
        capture_args: bool,
        max_args_bytes: int,
        max_log_bytes: int,
        emit_running: bool,
        redactor: Redactor | None,
        app_version: str | None,
        job_version: str | None,
    ) -> None:
        self._sink = sink
        self._job_id = job_id
        self.capture_console = capture_console
        self.capture_args = capture_args
        self.max_args_bytes = max_args_bytes
        self.max_log_bytes = max_log_bytes
        self.emit_running = emit_running
        self.redactor = redactor or Redactor.default()
        self.app_version = detect_app_version(app_version)
        self.job_version = job_version
        # The worker's node name, set when the worker is ready (see `_worker`).
        self.worker_name: str | None = None

    def job_id_of_task(self, task: Any) -> str:
        """`chronos_job_id` on the task, else the `job_id` callable's answer, else the name."""
        explicit = getattr(task, "chronos_job_id", None)
        if explicit:
            return str(explicit)
        if self._job_id is not None:
            try:
                chosen = self._job_id(task)
            except Exception:
                logger.warning("chronos: the job_id callable failed for %r", task, exc_info=True)
            else:
                if chosen:
                    return str(chosen)
        return str(task.name)

    def job_id_of(self, task: Any, request: Any) -> str:
        """A beat entry's job id travels in the message; other runs use the task's."""
        stamped = getattr(request, HEADER_JOB_ID, None)
        return str(stamped) if stamped else self.job_id_of_task(task)

    def _metadata(self, request: Any, args: Any, kwargs: Any) -> dict[str, Any] | None:
        metadata: dict[str, Any] = {}
        entry = getattr(request, HEADER_BEAT_ENTRY, None)
        if entry:
            metadata["beatEntry"] = str(entry)
        if self.capture_args:
            limit = self.max_args_bytes
            for key, value, shown in (
                ("args", args, getattr(request, "argsrepr", None)),
                ("kwargs", kwargs, getattr(request, "kwargsrepr", None)),
            ):
                if value:
                    text = shown if isinstance(shown, str) else saferepr(value, limit * 2)
                    metadata[key] = truncate_text(self.redactor.redact(text), limit)
        return metadata or None

    def start(self, task: Any, task_id: str, request: Any, args: Any, kwargs: Any) -> RunCapture:
        """A started run of `task` in this process (console capture begins here)."""
        attempt = attempt_of(request)
        run = RunCapture(
            self.job_id_of(task, request),
            sink=self._sink(),
            source=Source.CELERY,
            exec_id=exec_id_of(task_id, attempt),
            attempt=attempt,
            capture_console=self.capture_console,
            max_log_bytes=self.max_log_bytes,
            job_version=self.job_version,
            app_version=self.app_version,
            metadata=self._metadata(request, args, kwargs),
            queue=_queue(request),
            worker=self.worker_name or getattr(request, "hostname", None),
            scheduled_for=_scheduled_for(request),
            emit_running=self.emit_running,
            redactor=self.redactor,
        )
        return run.start()

    def report(
        self,
        task: Any,
        task_id: str,
        request: Any,
        status: ExecutionStatus,
        *,
        error: BaseException | None = None,
        message: str | None = None,
        started: float | None = None,
        pid: int | None = None,
    ) -> None:
        """Record the final state of a run this process did not execute itself."""
        sink = self._sink()
        if sink is None:
            return
        attempt = attempt_of(request)
        now = datetime.now(UTC)
        started_at = now
        if started:
            started_at = min(now, datetime.fromtimestamp(started, UTC))
        if error is not None:
            error_type = f"{type(error).__module__}.{type(error).__qualname__}"
            message = message or str(error) or None
        else:
            error_type = None
        event = ExecutionEvent(
            exec_id=exec_id_of(task_id, attempt),
            job_id=self.job_id_of(task, request),
            status=status,
            started_at=started_at,
            finished_at=now,
            duration_ms=round((now - started_at) / timedelta(milliseconds=1), 3),
            error_type=error_type,
            error_message=message,
            attempt=attempt,
            job_version=self.job_version,
            app_version=self.app_version,
            source=Source.CELERY,
            host=hostname(),
            pid=pid or os.getpid(),
            queue=_queue(request),
            worker=self.worker_name or getattr(request, "hostname", None),
            scheduled_for=_scheduled_for(request),
        )
        if not sink.record(event):
            logger.debug("chronos: the sink dropped %s (%s)", event.exec_id, status)


@functools.cache
def hostname() -> str:
    """This machine's host name (cached)."""
    return socket.gethostname()[:256]
