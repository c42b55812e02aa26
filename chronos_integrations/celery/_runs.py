"""Building the record of one task run from what Celery knows about it.

`RunFactory` holds the user's choices (job ids, console capture, arguments) and turns a task
and its request into a started `RunCapture` in the process that runs the task, or into a final
`ExecutionEvent` in a worker's main process for runs its pool child could not report (a hard
time limit, a terminated or revoked task).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import Any

import pydantic_core
from celery.app.task import Context
from celery.utils.saferepr import saferepr

from chronos_core import (
    ExecutionEvent,
    ExecutionStatus,
    Redactor,
    RunCapture,
    Source,
    _tracing,
    detect_app_version,
    truncate_text,
)
from chronos_core._capture import _hostname
from chronos_core._events import clean_metadata, duration_ms, utc_from_ns, wire_timestamp
from chronos_core._models import (
    MAX_ID_LENGTH,
    MAX_SHORT_TEXT,
    MAX_VERSION_LENGTH,
    format_timestamp,
    parse_timestamp,
)
from chronos_core._tracing import current_trace_id
from chronos_core._trusted import trusted_event

__all__ = [
    "HEADER_BEAT_ENTRY",
    "HEADER_JOB_ID",
    "HEADER_SCHEDULED_FOR",
    "LeanRun",
    "RunFactory",
    "attempt_of",
    "exec_id_of",
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


_SUCCESS = ExecutionStatus.SUCCESS
_time_ns = time.time_ns
_perf_counter_ns = time.perf_counter_ns
# A `LeanRun` value not worked out yet.
_UNSET: Any = object()
# Distinct (job id, queue, worker) whose shared JSON a `RunFactory` keeps.
MAX_WIRE_TAILS = 1_024
# A string as JSON, quoted and escaped (what `json.dumps` calls for a `str`).
_json_text = encode_basestring_ascii
_to_json = pydantic_core.to_json
# The last whole second a lean run's JSON wrote, and its text (`wire_timestamp`'s, without
# its call): one tuple, read and replaced in one step, as threads may share it.
_stamp: tuple[int, str] = (-1, "")
# A timestamp's end for each millisecond.
_MILLIS = tuple(f".{n:03d}Z" for n in range(1_000))
# What `repr` writes after the integer part of a whole number of microseconds in
# milliseconds, for each microsecond within the millisecond: ".0", ".001", ..., ".5", ".999".
_FRACTIONS = tuple(repr(n / 1_000)[1:] for n in range(1_000))


def _stamp_of(second: int) -> tuple[int, str]:
    global _stamp
    _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return _stamp


class LeanRun:
    """A task run recorded with the least work on the task's thread.

    Used when nothing has to happen while the task runs (no console capture, no `running`
    event as it starts). Starting it keeps references (the factory, the task, the task id)
    and the few values of the request the event needs (not the request,
    whose arguments would stay alive while the run waits to be sent), and reads the attempt
    number, the trace id and two clocks; finishing it reads one more clock and hands the run
    to the sink. Everything else the event holds (job id, queue, worker, scheduled time,
    metadata) is worked out from those when the event is built: a `BatchExporter` takes the
    run itself (`record_deferred`) and does that on its own thread, where an error is counted
    as the exporter counts any deferred run it cannot build; any other sink gets the event
    built here. A failure or a retry carries a stack and the failing code: that event is made
    at once, by `RunCapture`, with this run's timing. Attribute names match `RunCapture`'s
    where they mean the same.

    A `job_id` callable is asked on the task's thread, as the run starts (it may read
    `task.request`, which is only this run's there); task arguments, when recorded, are
    read then too (the task could change them while it runs).
    """

    __slots__ = (
        "_duration_ns",
        "_factory",
        "_finished",
        "_job_id",
        "_metadata",
        "_started_ns",
        "_task",
        "_wall_ns",
        "attempt",
        # What the event needs of the request, under the request's own attribute names (the
        # HEADER_* names among them): the run stands in for it where a request is read.
        "chronos_beat_entry",
        "chronos_job_id",
        "chronos_scheduled_for",
        "delivery_info",
        "hostname",
        "sink",
        "task_id",
        "trace_id",
    )

    source = Source.CELERY
    labels: tuple[str, ...] = ()

    def __init__(
        self,
        factory: RunFactory,
        task: Any,
        task_id: str,
        request: Any,
        args: Any = None,
        kwargs: Any = None,
    ) -> None:
        self._factory = factory
        self._task = task
        self.task_id = task_id
        # Not the request itself: it holds the task's arguments and the message, and a run
        # may wait in the exporter's queue for a while (an unreachable server).
        if type(request) is Context:
            # Celery's own request: the fields it always has are class attributes with a
            # default (read directly); the headers, when a message has them, are in its dict.
            self.delivery_info = request.delivery_info
            self.hostname = request.hostname
            retries = request.retries
            fields = request.__dict__
            if (
                HEADER_JOB_ID in fields
                or HEADER_SCHEDULED_FOR in fields
                or HEADER_BEAT_ENTRY in fields
            ):
                self._headers(fields.get)
            else:
                self.chronos_job_id = self.chronos_scheduled_for = self.chronos_beat_entry = None
        else:
            self.delivery_info = getattr(request, "delivery_info", None)
            self.hostname = getattr(request, "hostname", None)
            retries = getattr(request, "retries", 0)
            self._headers(lambda name: getattr(request, name, None))
        # `attempt_of`, inlined for the usual case (an int, 0 before any retry).
        self.attempt = retries + 1 if type(retries) is int else attempt_of(request)
        sink = factory.known_sink
        if sink is None:
            sink = factory.known_sink = factory._sink()
        self.sink = sink
        self._job_id = None if factory._job_id is None else factory.job_id_of(task, request)
        self._metadata = (
            factory._metadata(request, args, kwargs) if factory.capture_args else _UNSET
        )
        # `current_trace_id()`, its usual answer inlined: with OpenTelemetry's context empty
        # (nothing traced), None, read from the ContextVar that holds it (`_tracing`).
        otel = _tracing.otel_context
        if otel is not None and otel[0]._RUNTIME_CONTEXT is otel[1] and not otel[2].get():
            self.trace_id = None
        else:
            self.trace_id = current_trace_id()
        self._finished = False
        self._duration_ns = 0
        self._wall_ns = _time_ns()
        self._started_ns = _perf_counter_ns()

    def _headers(self, read: Callable[[str], Any]) -> None:
        self.chronos_job_id = read(HEADER_JOB_ID)
        self.chronos_scheduled_for = read(HEADER_SCHEDULED_FOR)
        self.chronos_beat_entry = read(HEADER_BEAT_ENTRY)

    def __repr__(self) -> str:
        return f"<LeanRun task_id={self.task_id!r} attempt={self.attempt}>"

    # -- what the event holds, worked out when it is built ----------------------------------

    @property
    def job_id(self) -> str:
        """The job id: a beat entry's (from the message), else the task's (see `RunFactory`)."""
        job_id = self._job_id
        if job_id is None:
            job_id = self._job_id = self._factory.job_id_of(self._task, self)
        return job_id

    @property
    def exec_id(self) -> str:
        """The task id for the first attempt, `<task id>:<attempt>` for each retry."""
        return exec_id_of(self.task_id, self.attempt)

    @property
    def queue(self) -> str | None:
        """The queue the message came from."""
        queue = _queue(self)
        return queue[:MAX_SHORT_TEXT] if queue else None

    @property
    def worker(self) -> str | None:
        """The worker's node name (its host name until the worker is ready)."""
        worker = self._factory.worker_name or self.hostname
        return worker[:MAX_SHORT_TEXT] if worker else None

    @property
    def scheduled_for(self) -> datetime | None:
        """When beat scheduled the run (UTC), for runs beat sent."""
        scheduled = _scheduled_for(self)
        if scheduled is not None and scheduled.tzinfo is None:
            scheduled = scheduled.replace(tzinfo=UTC)
        return scheduled

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The beat entry's name and, when recorded, the task's arguments."""
        metadata = self._metadata
        if metadata is _UNSET:
            metadata = self._metadata = self._factory._metadata(self, None, None)
        return metadata

    @property
    def job_version(self) -> str | None:
        return self._factory.job_version

    @property
    def app_version(self) -> str | None:
        return self._factory.app_version

    @property
    def max_log_bytes(self) -> int:
        return self._factory.max_log_bytes

    @property
    def redactor(self) -> Redactor:
        return self._factory.redactor

    @property
    def started_at(self) -> datetime:
        """When the run started (UTC)."""
        return utc_from_ns(self._wall_ns)

    @property
    def finished(self) -> bool:
        """Whether `finish()` has been called."""
        return self._finished

    def started_before(self, perf_ns: int) -> bool:
        """Whether the run started before `perf_ns` (a `time.perf_counter_ns()` reading)."""
        return self._started_ns < perf_ns

    def _ids(self) -> tuple[str, str]:
        """(job id, execution id), refused if beyond the schema's limits."""
        job_id = self.job_id
        if not job_id or len(job_id) > MAX_ID_LENGTH:
            raise ValueError(f"job_id must be a string of 1 to {MAX_ID_LENGTH} characters")
        exec_id = self.exec_id
        if not exec_id or len(exec_id) > MAX_ID_LENGTH:
            raise ValueError(f"exec_id must be a string of 1 to {MAX_ID_LENGTH} characters")
        return job_id, exec_id

    # -- finishing --------------------------------------------------------------------------

    def finish(
        self, status: ExecutionStatus | None = None, *, error: BaseException | None = None
    ) -> None:
        """Hand the run to the sink (once): success unless `status` or `error` say otherwise."""
        end = _perf_counter_ns()
        if self._finished:
            return
        self._finished = True
        duration = end - self._started_ns
        self._duration_ns = duration if duration > 0 else 0
        sink = self.sink
        if sink is None:
            return
        try:
            if error is None and (status is None or status is _SUCCESS):
                deferred = getattr(sink, "record_deferred", None)
                accepted = deferred(self) if deferred is not None else sink.record(self.event())
            else:
                accepted = sink.record(self._full_event(status, error))
            if not accepted:
                logger.debug("chronos: the sink dropped %r", self)
        except Exception:
            logger.warning("chronos: could not record %r", self, exc_info=True)

    def event(self) -> ExecutionEvent:
        """The successful run's event (called by the exporter's thread, or by `finish`)."""
        job_id, exec_id = self._ids()
        started = self.started_at
        duration = self._duration_ns
        metadata = self.metadata
        return trusted_event(
            {
                "exec_id": exec_id,
                "job_id": job_id,
                "status": ExecutionStatus.SUCCESS,
                "started_at": started,
                "finished_at": started + timedelta(microseconds=duration // 1_000),
                "duration_ms": duration_ms(duration),
                "attempt": self.attempt,
                "labels": [],
                "metadata": clean_metadata(metadata) if metadata else {},
                "job_version": self._factory.job_version,
                "app_version": self._factory.app_version,
                "source": Source.CELERY,
                "host": _hostname(),
                "pid": os.getpid(),
                "queue": self.queue,
                "worker": self.worker,
                "scheduled_for": self.scheduled_for,
                "trace_id": self.trace_id,
            }
        )

    def wire(self) -> dict[str, Any]:
        """`event().to_wire()`, made for a fraction of the cost (what `wire_json` encodes for
        a run with fields of its own)."""
        job_id, exec_id = self._ids()
        started = self._wall_ns // 1_000
        duration = self._duration_ns
        metadata = self.metadata
        factory = self._factory
        wire: dict[str, Any] = {
            "execId": exec_id,
            "status": "success",
            "startedAt": wire_timestamp(started),
            "finishedAt": wire_timestamp(started + duration // 1_000),
            "durationMs": duration_ms(duration),
            "attempt": self.attempt,
            **factory.shared_wire(job_id, self.queue, self.worker),
        }
        if metadata:
            wire["metadata"] = clean_metadata(metadata)
        if self.trace_id is not None:
            wire["traceId"] = self.trace_id
        scheduled_for = self.scheduled_for
        if scheduled_for is not None:
            wire["scheduledFor"] = format_timestamp(scheduled_for)
        return wire

    def wire_json(self) -> bytes:
        """`wire()` as JSON, what the exporter sends: the run's own fields written here, the
        rest (job id, host, queue, worker, versions) the same bytes for every run of its task
        on this worker, made once (`RunFactory.wire_tail`).

        A run with a trace id, a beat schedule or metadata has more fields of its own: its
        `wire()` is encoded instead.
        """
        if (
            self.trace_id is not None
            or self.chronos_scheduled_for
            or self.chronos_beat_entry
            or (self._metadata is not _UNSET and self._metadata)
        ):
            return _to_json(self.wire())
        factory = self._factory
        info = self.delivery_info
        # `RunFactory.wire_tail`'s key, made here: a dict lookup is all most runs need.
        key = (
            _pid,
            self._task,
            self._job_id,
            self.chronos_job_id,
            (info.get("routing_key") or info.get("queue")) if info else None,
            self.hostname,
        )
        try:
            tail = factory._wire_tails[key]
        except (KeyError, TypeError):  # not made yet, or a task that is not hashable
            tail = factory.wire_tail(self)
        attempt = self.attempt
        exec_id = self.task_id if attempt <= 1 else f"{self.task_id}:{attempt}"  # exec_id_of
        if tail is None or not 0 < len(exec_id) <= MAX_ID_LENGTH:
            return _to_json(self.wire())  # which refuses the id beyond the schema's limits
        # `wire_timestamp` of both times and `duration_ms` of the duration, inlined (the
        # tests compare the result with the event's own JSON). One division of the clock's
        # 61-bit reading (a slow one, for Python); what is within its second is a small int.
        duration = self._duration_ns
        second, nanos = divmod(self._wall_ns, 1_000_000_000)
        stamp = _stamp
        if stamp[0] != second:
            stamp = _stamp_of(second)
        started_text = stamp[1] + _MILLIS[nanos // 1_000_000]
        # The end in microseconds after that second (the wire's times are whole microseconds).
        end = nanos // 1_000 + duration // 1_000
        if end < 1_000_000:
            finished_text = stamp[1] + _MILLIS[end // 1_000]
        else:
            stamp = _stamp_of(second + end // 1_000_000)
            finished_text = stamp[1] + _MILLIS[end // 1_000 % 1_000]
        # `repr(duration_ms(duration))` from integers: the milliseconds and the fraction's
        # text (the same text, checked below 10**12 microseconds, 11.6 days; beyond, repr).
        micros = (duration + 500) // 1_000
        if micros < 1_000_000_000_000:
            duration_text = f"{micros // 1_000}{_FRACTIONS[micros % 1_000]}"
        else:
            duration_text = repr(micros / 1_000)
        return (
            f'{{"execId":{_json_text(exec_id)},"status":"success",'
            f'"startedAt":"{started_text}","finishedAt":"{finished_text}",'
            f'"durationMs":{duration_text},"attempt":{attempt},'
        ).encode() + tail

    def _full_event(
        self, status: ExecutionStatus | None, error: BaseException | None
    ) -> ExecutionEvent:
        factory = self._factory
        run = RunCapture(
            self.job_id,
            source=Source.CELERY,
            exec_id=self.exec_id,
            attempt=self.attempt,
            max_log_bytes=factory.max_log_bytes,
            job_version=factory.job_version,
            app_version=factory.app_version,
            metadata=self.metadata,
            queue=self.queue,
            worker=self.worker,
            scheduled_for=self.scheduled_for,
            redactor=factory.redactor,
        )
        event = run.start().finish(status, error=error)
        if event is None:
            raise RuntimeError(f"no event for {self!r}")
        started = self.started_at
        duration = self._duration_ns
        return event.model_copy(
            update={
                "started_at": started,
                "finished_at": started + timedelta(microseconds=duration // 1_000),
                "duration_ms": duration_ms(duration),
                "trace_id": self.trace_id or event.trace_id,
            }
        )


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
        # `sink()`'s answer once it has one (an integration's sink does not change after).
        self.known_sink: Any = None
        self._job_id = job_id
        self.capture_console = capture_console
        self.capture_args = capture_args
        self.max_args_bytes = max_args_bytes
        self.max_log_bytes = max_log_bytes
        self.emit_running = emit_running
        self.redactor = redactor or Redactor.default()
        detected = detect_app_version(app_version)
        self.app_version = detected[:MAX_VERSION_LENGTH] if detected else None
        self.job_version = job_version[:MAX_VERSION_LENGTH] if job_version else None
        # Runs that need nothing while the task runs are `LeanRun`s (see there).
        self.lean = not capture_console and not emit_running
        # The JSON of the fields a lean run shares with every run of its task on this worker:
        # see `wire_tail`.
        self._wire_tails: dict[tuple[Any, ...], bytes | None] = {}
        self._worker_name: str | None = None

    @property
    def worker_name(self) -> str | None:
        """The worker's node name, set when the worker is ready (see `_worker`)."""
        return self._worker_name

    @worker_name.setter
    def worker_name(self, name: str | None) -> None:
        # The shared JSON of runs made before holds the request's host name as the worker.
        self._worker_name = name
        self._wire_tails = {}

    def shared_wire(self, job_id: str, queue: str | None, worker: str | None) -> dict[str, Any]:
        """The wire fields of a successful lean run that all runs of its task on a worker
        share (metadata empty: a run with metadata sets its own)."""
        shared: dict[str, Any] = {
            "jobId": job_id,
            "labels": [],
            "metadata": {},
            "source": "celery",
            "host": _hostname(),
            "pid": _pid,
        }
        # One test each rather than a loop over pairs.
        if self.job_version is not None:
            shared["jobVersion"] = self.job_version
        if self.app_version is not None:
            shared["appVersion"] = self.app_version
        if queue is not None:
            shared["queue"] = queue
        if worker is not None:
            shared["worker"] = worker
        return shared

    def wire_tail(self, run: LeanRun) -> bytes | None:
        """The JSON of a successful lean run's fields other than its own few (those that all
        runs of its task on this worker share), without the opening brace: `wire_json` writes
        its own fields before it. Made once per task, queue and worker; None if the job id is
        beyond the schema's limits."""
        info = run.delivery_info
        key = (  # the same as `LeanRun.wire_json`'s
            _pid,
            run._task,
            run._job_id,
            run.chronos_job_id,
            (info.get("routing_key") or info.get("queue")) if info else None,
            run.hostname,
        )
        try:
            return self._wire_tails[key]
        except KeyError:
            kept = True
        except TypeError:  # a task that is not hashable (not a Celery task): not kept
            kept = False
        job_id = run.job_id
        tail = None
        if 0 < len(job_id) <= MAX_ID_LENGTH:
            tail = _to_json(self.shared_wire(job_id, run.queue, run.worker))[1:]
        if kept:
            if len(self._wire_tails) >= MAX_WIRE_TAILS:
                self._wire_tails = {}  # tasks or queues made per run (or a fork): start again
            self._wire_tails[key] = tail
        return tail

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

    def start(
        self,
        task: Any,
        task_id: str,
        request: Any,
        args: Any,
        kwargs: Any,
        *,
        attempt: int | None = None,
    ) -> RunCapture | LeanRun:
        """A started run of `task` in this process (console capture begins here).

        A lean run reads the attempt from `request` itself; `attempt` is for a `RunCapture`.
        """
        if self.lean:
            return LeanRun(self, task, task_id, request, args, kwargs)
        if attempt is None:
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
            host=_hostname(),
            pid=pid or os.getpid(),
            queue=_queue(request),
            worker=self.worker_name or getattr(request, "hostname", None),
            scheduled_for=_scheduled_for(request),
        )
        if not sink.record(event):
            logger.debug("chronos: the sink dropped %s (%s)", event.exec_id, status)


# This process's id, read once per process rather than once per run (`getpid` is a system
# call); a forked child reads its own.
_pid: int = os.getpid()


def _reset_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_pid)
