"""Capturing one run of a job: the mechanism every integration uses.

`RunCapture` is started when a run begins and finished when it ends, possibly from another
callback (Celery's prerun/postrun); `capture()` is the same thing as a context manager, and
`monitor()` (in `_monitor`) as a decorator. Whatever happens inside the SDK, the job is
unaffected: `start()` and `finish()` never raise, the job's exception propagates unchanged
and its result is returned unchanged. SDK problems are logged to `chronos_core.capture`,
never into the run's captured output.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from chronos_core._console import BoundedText, ConsoleCapture
from chronos_core._console import install as install_console
from chronos_core._events import clean_metadata, clip, duration_ms, utc_from_ns
from chronos_core._frames import code_snippet
from chronos_core._limits import (
    MAX_ID_LENGTH,
    MAX_LABELS,
    MAX_LOG_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_SHORT_TEXT,
    MAX_SNIPPET_LENGTH,
    MAX_STACK_LENGTH,
    MAX_VERSION_LENGTH,
    ExecutionStatus,
    Source,
)
from chronos_core._redact import Redactor
from chronos_core._sink import EventSink
from chronos_core._tracing import current_trace_id
from chronos_core._truncate import DEFAULT_MAX_LOG_BYTES, truncate_parts, truncate_text
from chronos_core._versions import detect_app_version

if TYPE_CHECKING:
    from chronos_core._models import ExecutionEvent

__all__ = ["CaptureOptions", "RunCapture", "capture"]

logger = logging.getLogger("chronos_core.capture")

# `job-1:1725192000000-1a2b3c4d`: the contract's `jobId:epochMs`, plus a random suffix so
# that two runs of one job in the same millisecond (two workers) stay distinct.
_EXEC_ID_TAIL = len(":1725192000000-1a2b3c4d")
_CANCELLATIONS = (KeyboardInterrupt, asyncio.CancelledError)


class CaptureOptions(TypedDict, total=False):
    """Keyword arguments of `RunCapture`, `capture()` and `monitor()` besides the job id."""

    sink: EventSink | None
    source: Source
    exec_id: str | None
    attempt: int
    capture_console: bool
    max_log_bytes: int
    job_version: str | None
    app_version: str | None
    labels: Iterable[str] | None
    metadata: Mapping[str, Any] | None
    queue: str | None
    worker: str | None
    trigger_id: str | None
    scheduled_for: datetime | None
    emit_running: bool
    redactor: Redactor | None


# Read once, at import: a forking worker's children then inherit it instead of each
# asking the kernel again.
_HOSTNAME = socket.gethostname()[:MAX_SHORT_TEXT]


def _trusted_event() -> Callable[[dict[str, Any]], ExecutionEvent]:
    """`_trusted.trusted_event`, imported on the first event built: the models bring pydantic,
    which a process that only concludes runs (an RQ work horse) does not load."""
    global _trusted
    if _trusted is None:
        from chronos_core._trusted import trusted_event

        _trusted = trusted_event
    return _trusted


_trusted: Callable[[dict[str, Any]], ExecutionEvent] | None = None


def _hostname() -> str:
    return _HOSTNAME


def _new_exec_id(job_id: str) -> str:
    millis = time.time_ns() // 1_000_000
    return f"{job_id[: MAX_ID_LENGTH - _EXEC_ID_TAIL]}:{millis}-{random.getrandbits(32):08x}"


def _error_type(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return name[:MAX_SHORT_TEXT]


def _error_message(error: BaseException) -> str | None:
    try:
        message = str(error)
    except Exception:  # a user exception whose __str__ fails
        message = f"<unprintable {type(error).__name__}>"
    return message or None


def _default_status(error: BaseException | None) -> ExecutionStatus:
    if error is None:
        return ExecutionStatus.SUCCESS
    if isinstance(error, _CANCELLATIONS):
        return ExecutionStatus.CANCELLED
    if isinstance(error, SystemExit) and error.code in (0, None):
        return ExecutionStatus.SUCCESS
    return ExecutionStatus.FAILED


def _status(status: ExecutionStatus | str) -> ExecutionStatus:
    # A member is taken as is: calling the enum class runs enum's Python code, which a forked
    # worker's child would pay for in page copies.
    return status if type(status) is ExecutionStatus else ExecutionStatus(status)


class RunCapture:
    """One run of a job, from `start()` to `finish()`, turned into an `ExecutionEvent`.

    Invalid arguments (an empty job id, `attempt < 1`, ...) raise `ValueError` here, at
    construction; after that, nothing this object does raises into the job.
    `labels` and `metadata` are attributes the job may add to until `finish()`.
    """

    __slots__ = (
        "_console",
        "_console_begun",
        "_context",
        "_finish_latch",
        "_started_at",
        "_started_ns",
        "_trace_id",
        "app_version",
        "attempt",
        "capture_console",
        "emit_running",
        "exec_id",
        "job_id",
        "job_version",
        "labels",
        "max_log_bytes",
        "metadata",
        "queue",
        "redactor",
        "scheduled_for",
        "sink",
        "source",
        "trigger_id",
        "worker",
    )

    def __init__(
        self,
        job_id: str,
        *,
        sink: EventSink | None = None,
        source: Source = Source.RUNNER,
        exec_id: str | None = None,
        attempt: int = 1,
        capture_console: bool = False,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        job_version: str | None = None,
        app_version: str | None = None,
        labels: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        queue: str | None = None,
        worker: str | None = None,
        trigger_id: str | None = None,
        scheduled_for: datetime | None = None,
        emit_running: bool = False,
        redactor: Redactor | None = None,
    ) -> None:
        if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_ID_LENGTH:
            raise ValueError(f"job_id must be a string of 1 to {MAX_ID_LENGTH} characters")
        if exec_id is not None and (not exec_id or len(exec_id) > MAX_ID_LENGTH):
            raise ValueError(f"exec_id must be a string of 1 to {MAX_ID_LENGTH} characters")
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        if max_log_bytes < 0:
            raise ValueError(f"max_log_bytes must be >= 0, got {max_log_bytes}")
        self.job_id = job_id
        self.exec_id = exec_id or _new_exec_id(job_id)
        self.sink = sink
        self.source = source
        self.attempt = attempt
        self.capture_console = capture_console
        self.max_log_bytes = max_log_bytes
        self.job_version = job_version[:MAX_VERSION_LENGTH] if job_version else None
        detected = detect_app_version(app_version)
        self.app_version = detected[:MAX_VERSION_LENGTH] if detected else None
        if isinstance(labels, str):
            labels = [labels]
        self.labels: list[str] = [str(label)[:MAX_SHORT_TEXT] for label in labels or ()]
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self.queue = queue[:MAX_SHORT_TEXT] if queue else None
        self.worker = worker[:MAX_SHORT_TEXT] if worker else None
        self.trigger_id = trigger_id[:MAX_SHORT_TEXT] if trigger_id else None
        if scheduled_for is not None and scheduled_for.tzinfo is None:
            scheduled_for = scheduled_for.replace(tzinfo=UTC)
        self.scheduled_for = scheduled_for
        self.emit_running = emit_running
        self.redactor = redactor or Redactor.default()
        self._started_at: datetime | None = None
        self._started_ns = 0
        self._trace_id: str | None = None
        # The context `prepare()` kept: the run's trace, if it starts in it (see `start()`).
        self._context: contextvars.Context | None = None
        self._console: ConsoleCapture | None = None
        self._console_begun = False
        # Acquired by the first finish(); a non-blocking acquire makes finish() idempotent
        # even when two callbacks (or a signal handler) race to report the same run.
        self._finish_latch = threading.Lock()

    def __repr__(self) -> str:
        return f"<RunCapture job_id={self.job_id!r} exec_id={self.exec_id!r}>"

    @property
    def started_at(self) -> datetime | None:
        """When `start()` was called (UTC), or None before that."""
        return self._started_at

    @property
    def finished(self) -> bool:
        """Whether `finish()` has been called."""
        return self._finish_latch.locked()

    def prepare(self, *, begin_console: bool = False) -> RunCapture:
        """Build now what `start()` would build, so that `start()` only reads the clocks.

        For a forking worker: its parent prepares the run before the fork and the child
        starts it, and each object the child creates or first touches costs it a page copy.
        The context is kept too: if `start()` runs in the same context (a forked child's is
        a copy of it), the trace is the kept context's, read only when the event is made
        (`event_from()`, in the parent) rather than by the child: OpenTelemetry's lookup
        touches some 25 pages a child would copy.

        With `begin_console`, console capture begins here, in this context, rather than at
        `start()`: a forking worker's parent does so right before the fork, so its child
        starts with the capture in place, and stops it in its own context with
        `detach_console()`. Never raises; `start()` builds whatever is still missing.
        """
        if self._started_at is not None:
            return self
        if self.capture_console and self._console is None:
            try:
                console = ConsoleCapture(self.max_log_bytes)
                if begin_console:
                    self._console_begun = True
                    console.begin()  # installs the stream wrappers
                else:
                    install_console()
                self._console = console
            except Exception:
                logger.warning("chronos: could not prepare console capture", exc_info=True)
        if self._context is None:
            self._context = contextvars.copy_context()
        return self

    def detach_console(self) -> None:
        """Stop the console capture `prepare(begin_console=True)` began in this context,
        without finishing the run (a forking worker's parent: its child finishes it)."""
        console, self._console = self._console, None
        if console is not None and self._console_begun:
            try:
                console.end()
            except Exception:
                logger.warning("chronos: could not stop console capture", exc_info=True)

    def start(self) -> RunCapture:
        """Note the start time, report `running` if asked, and begin console capture."""
        if self._started_at is not None:
            return self
        try:
            self._started_at = datetime.now(UTC)
            self._started_ns = time.perf_counter_ns()
            # Equal contexts hold the same OpenTelemetry context, so the same span; comparing
            # them is one C call, and an identity check in a forked child that set nothing.
            context = self._context
            if context is None or context != contextvars.copy_context():
                self._context = None
                self._trace_id = current_trace_id()
            if self.emit_running and self.sink is not None:
                self._record(self._build(status=ExecutionStatus.RUNNING))
            if self.capture_console and not self._console_begun:
                self._console = (self._console or ConsoleCapture(self.max_log_bytes)).begin()
            # Measured last, so the duration does not include the SDK's own start-up.
            self._started_ns = time.perf_counter_ns()
        except Exception:
            logger.warning("chronos: could not start capturing %r", self, exc_info=True)
        return self

    def start_from(
        self, wall_ns: int, perf_ns: int, *, console: ConsoleCapture | None = None
    ) -> RunCapture:
        """Mark the run started at a moment read earlier, and adopt a console capture.

        `wall_ns` and `perf_ns` are what `time.time_ns()` and `time.perf_counter_ns()` read
        then. For an integration that reads the clocks around the job and builds the run only
        when it needs one (an RQ work horse does, when a job fails or prints). `console`, a
        capture already begun, is ended and read by `conclude()` as the run's own.
        """
        if self._started_at is not None:
            return self
        self._started_at = utc_from_ns(wall_ns)
        self._started_ns = perf_ns
        if console is not None:
            self._console = console
            self._console_begun = True
        return self

    def finish(
        self,
        status: ExecutionStatus | None = None,
        *,
        error: BaseException | None = None,
        exit_code: int | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        error_message: str | None = None,
        error_type: str | None = None,
    ) -> ExecutionEvent | None:
        """Build the final event, hand it to the sink and return it; None if already finished.

        `status` defaults to success, or to failed when `error` is given (cancelled for
        `KeyboardInterrupt` and `asyncio.CancelledError`; success for `SystemExit(0)`).
        Explicit `stdout`/`stderr` replace what console capture saw; `error_message` and
        `error_type` describe a failure that has no exception (a child process's exit code)
        or override what is derived from `error`.
        """
        fields = self.conclude(
            status,
            error=error,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            error_message=error_message,
            error_type=error_type,
        )
        if fields is None:
            return None
        try:
            event = self._build(**fields)
        except Exception:
            logger.warning("chronos: could not build the event of %r", self, exc_info=True)
            return None
        self._record(event)
        return event

    def conclude(
        self,
        status: ExecutionStatus | None = None,
        *,
        error: BaseException | None = None,
        exit_code: int | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        error_message: str | None = None,
        error_type: str | None = None,
        ended_ns: int | None = None,
    ) -> dict[str, Any] | None:
        """`finish()` short of making the event: the run's final fields, for `event_from()`.

        The fields include what only this process knows (start time, trace, pid), so the
        event can be made elsewhere from a copy of this object taken before the run started
        (a forking worker's parent, from its copy of the run it prepared before the fork).
        The trace is left out when the run started in the context `prepare()` kept: the copy
        reads it from there. Nothing is handed to the sink. None if already finished, or if
        the SDK failed (logged). `ended_ns`: the end as `time.perf_counter_ns()` read it, if
        earlier than now.
        """
        end_ns = time.perf_counter_ns() if ended_ns is None else ended_ns
        if not self._finish_latch.acquire(blocking=False):
            return None
        # Stop capturing first: nothing the SDK logs below may land in the run's output.
        console, self._console = self._console, None
        if console is not None:
            try:
                console.end()
            except Exception:
                logger.warning("chronos: could not stop console capture", exc_info=True)
        try:
            fields = self._outcome_fields(end_ns, status, error, exit_code)
            if error is not None:
                fields.update(self._error_fields(error))
            if error_message is not None:
                fields["error_message"] = self._clean_text(error_message, MAX_MESSAGE_LENGTH)
            if error_type is not None:
                fields["error_type"] = clip(error_type, MAX_SHORT_TEXT)
            captured_out = console.stdout if console is not None else None
            captured_err = console.stderr if console is not None else None
            # Most runs print nothing: each call skipped here is a few pages fewer for a
            # forked child to copy.
            fields["stdout"] = fields["stderr"] = None
            if stdout is not None or captured_out:
                fields["stdout"] = self._log_field(stdout, captured_out)
            if stderr is not None or captured_err:
                fields["stderr"] = self._log_field(stderr, captured_err)
            fields["started_at"] = self._started_at
            if self._context is None:  # else read by event_from(), from the kept context
                fields["trace_id"] = self._trace_id
            fields["pid"] = os.getpid()
        except Exception:
            logger.warning("chronos: could not build the event of %r", self, exc_info=True)
            return None
        return fields

    def event_from(self, fields: dict[str, Any]) -> ExecutionEvent:
        """The event of the run whose final fields `conclude()` returned (may raise)."""
        return self._build(**fields)

    def __enter__(self) -> RunCapture:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(error=exc)

    async def __aenter__(self) -> RunCapture:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(error=exc)

    def _build(self, **extra: Any) -> ExecutionEvent:
        # Attributes are public and may have been changed since construction, so the
        # limits are applied here, where the event is made.
        labels = self.labels
        return _trusted_event()(
            {
                "exec_id": self.exec_id,
                "job_id": self.job_id,
                "started_at": self._started_at,
                "attempt": max(1, int(self.attempt)),
                "labels": [str(label)[:MAX_SHORT_TEXT] for label in labels[:MAX_LABELS]]
                if labels
                else [],
                "metadata": clean_metadata(self.metadata),
                "job_version": clip(self.job_version, MAX_VERSION_LENGTH),
                "app_version": clip(self.app_version, MAX_VERSION_LENGTH),
                "source": self.source,
                "host": _hostname(),
                "pid": os.getpid(),
                "queue": clip(self.queue, MAX_SHORT_TEXT),
                "worker": clip(self.worker, MAX_SHORT_TEXT),
                "trigger_id": clip(self.trigger_id, MAX_SHORT_TEXT),
                "scheduled_for": self.scheduled_for,
                "trace_id": self._trace_id if self._context is None else self._kept_trace(),
                **extra,
            }
        )

    def _outcome_fields(
        self,
        end_ns: int,
        status: ExecutionStatus | None,
        error: BaseException | None,
        exit_code: int | None,
    ) -> dict[str, Any]:
        if self._started_at is None:
            logger.debug("chronos: %r finished without being started", self)
            self._started_at = datetime.now(UTC)
            end_ns = self._started_ns = time.perf_counter_ns()
        if self._trace_id is None and self._context is None:
            # Not started in a kept context: a span may have begun since start().
            self._trace_id = current_trace_id()
        duration_ns = max(0, end_ns - self._started_ns)
        if exit_code is None and isinstance(error, SystemExit) and isinstance(error.code, int):
            exit_code = error.code
        if status is None:
            status = _default_status(error)
        elif type(status) is not ExecutionStatus:
            status = _status(status)
        return {
            "status": status,
            # Derived from the monotonic clock, so never before started_at.
            "finished_at": self._started_at + timedelta(microseconds=duration_ns // 1000),
            "duration_ms": duration_ms(duration_ns),
            "exit_code": None if exit_code is None else int(exit_code),
        }

    def _kept_trace(self) -> str | None:
        """The trace of the context `prepare()` kept, read now that the event is made."""
        context, self._context = self._context, None
        if context is not None:
            self._trace_id = context.run(current_trace_id)
        return self._trace_id

    def _error_fields(self, error: BaseException) -> dict[str, Any]:
        fields: dict[str, Any] = {"error_type": _error_type(error)}
        message = _error_message(error)
        if message:
            fields["error_message"] = truncate_text(self._redact(message), MAX_MESSAGE_LENGTH)
        stack_limit = min(self.max_log_bytes, MAX_STACK_LENGTH)
        try:
            stack = "".join(traceback.format_exception(error))
        except Exception:
            logger.debug("chronos: could not format the traceback", exc_info=True)
        else:
            fields["error_stack"] = self._clean_text(stack, stack_limit)
        try:
            snippet = code_snippet(error)
        except Exception:
            logger.debug("chronos: could not read the failing code", exc_info=True)
        else:
            if snippet is not None:
                fields["code_snippet"] = truncate_text(snippet.text, MAX_SNIPPET_LENGTH)
                fields["code_language"] = snippet.language
        return fields

    def _log_field(self, explicit: str | None, captured: BoundedText | None) -> str | None:
        limit = min(self.max_log_bytes, MAX_LOG_LENGTH)
        if explicit is not None:
            return self._clean_text(explicit, limit)
        if captured is None or not captured:
            return None
        head, tail, omitted = captured.parts()
        return truncate_parts(self._redact(head), self._redact(tail), limit, omitted) or None

    def _clean_text(self, text: str, limit: int) -> str | None:
        """Redacted and truncated; huge text is cut to its ends before redaction."""
        if not text or limit <= 0:
            return None
        if len(text) > 2 * limit:
            middle = text[limit:-limit]
            omitted = len(middle.encode("utf-8", "replace"))
            head, tail = self._redact(text[:limit]), self._redact(text[-limit:])
            return truncate_parts(head, tail, limit, omitted) or None
        return truncate_text(self._redact(text), limit) or None

    def _redact(self, text: str) -> str:
        try:
            return self.redactor.redact(text)
        except Exception:
            # Better to send nothing than a secret the redactor failed to mask.
            logger.warning("chronos: redaction failed; text withheld", exc_info=True)
            return "[withheld: redaction failed]"

    def _record(self, event: ExecutionEvent) -> None:
        sink = self.sink
        if sink is None:
            return
        try:
            if not sink.record(event):
                logger.debug("chronos: the sink dropped %s (%s)", event.exec_id, event.status)
        except Exception:
            logger.warning("chronos: the sink failed to record %s", event.exec_id, exc_info=True)


def capture(job_id: str, **options: Unpack[CaptureOptions]) -> RunCapture:
    """A `RunCapture` to use as `with capture("job-1", sink=exporter) as run:` or `async with`."""
    return RunCapture(job_id, **options)
