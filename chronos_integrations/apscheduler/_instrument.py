"""`instrument(scheduler)`: Chronos telemetry for an APScheduler 3 scheduler.

What is hooked, and why each piece:

- one listener (`add_listener`) for job added/modified/removed (registration), missed runs
  and max-instances refusals (runs the user never got), executor added (to wrap it), and
  executed/error as a fallback for runs the wrapper could not see (process pools);
- each in-process executor's `submit_job`, replaced on that instance only, to hand it a
  copy of the job whose function is wrapped (see `_runs`): the only way to time a run
  exactly and to see its output.

Nothing here does network I/O on the scheduler's or the job's thread: events go to the
exporter's queue, and so do registrations (`BatchExporter.register_jobs`). Every hook body
is guarded.
APScheduler quirks handled: an executed event can arrive before the submitted one (we
never use the submitted event), an error event may carry no exception, and a listener
may be called before the scheduler starts.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler import events as aps_events
from apscheduler.util import iscoroutinefunction_partial

from chronos_core import (
    BatchExporter,
    EventSink,
    ExecutionStatus,
    JobDefinition,
    RunCapture,
    RunMode,
    Source,
    detect_app_version,
    get_exporter,
    signature_hash,
)
from chronos_integrations.apscheduler._runs import RunTimes, clone_job, wrap_function
from chronos_integrations.apscheduler._schedule import schedule_of

__all__ = ["SchedulerInstrumentation", "default_job_id"]

logger = logging.getLogger("chronos_integrations.apscheduler")

# APScheduler's own default id: uuid4().hex. Such ids change on every restart.
_RANDOM_ID = re.compile(r"[0-9a-f]{32}")
_MASK = (
    aps_events.EVENT_JOB_ADDED
    | aps_events.EVENT_JOB_MODIFIED
    | aps_events.EVENT_JOB_REMOVED
    | aps_events.EVENT_ALL_JOBS_REMOVED
    | aps_events.EVENT_JOB_EXECUTED
    | aps_events.EVENT_JOB_ERROR
    | aps_events.EVENT_JOB_MISSED
    | aps_events.EVENT_JOB_MAX_INSTANCES
    | aps_events.EVENT_EXECUTOR_ADDED
)
_ATTRIBUTE = "_chronos_instrumentation"


def default_job_id(job: Any) -> str:
    """The Chronos id of an APScheduler job: its own id, unless APScheduler generated it.

    Generated ids are random (a new uuid per process start), so the function's qualified
    name (`module.qualname`) stands in for them.
    """
    if not _RANDOM_ID.fullmatch(job.id):
        return str(job.id)
    func_ref = getattr(job, "func_ref", None)
    if isinstance(func_ref, str) and func_ref:
        return func_ref.replace(":", ".")
    func = job.func
    while isinstance(func, __import__("functools").partial):
        func = func.func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if module and qualname:
        return f"{module}.{qualname}"
    return str(job.name or job.id)


class SchedulerInstrumentation:
    """The hooks installed on one scheduler; `uninstall()` removes all of them."""

    def __init__(
        self,
        scheduler: Any,
        sink: EventSink,
        *,
        registrar: BatchExporter | None,
        owns_registrar: bool = False,
        capture_console: bool,
        max_log_bytes: int,
        job_id: Callable[[Any], str | None] | None,
        labels: list[str],
    ) -> None:
        self.scheduler = scheduler
        self.sink = sink
        self.capture_console = capture_console
        self.max_log_bytes = max_log_bytes
        self._custom_job_id = job_id
        self.labels = labels
        self.registrar = registrar
        self._owns_registrar = owns_registrar
        self._app_version = detect_app_version()
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}  # APScheduler job id -> Chronos job id
        self._owners: dict[str, str] = {}  # Chronos id derived from a name -> APScheduler id
        # The executor each job was last submitted to, and the wrapped ones: an executed or
        # error event of a job submitted to a wrapped executor was reported by the wrapper.
        self._executor_of: dict[str, str] = {}
        self._wrapped_aliases: set[str] = set()
        self._executors: dict[int, tuple[Any, Any]] = {}
        self._coroutines: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        self.installed = False

    # -- install / uninstall ------------------------------------------------------------

    def install(self) -> SchedulerInstrumentation:
        """Add the listener, wrap the executors and register the jobs already added."""
        self.scheduler.add_listener(self._on_event, _MASK)
        for alias, executor in list(getattr(self.scheduler, "_executors", {}).items()):
            self._wrap_executor(alias, executor)
        self._register_jobs(self.scheduler.get_jobs())
        setattr(self.scheduler, _ATTRIBUTE, self)
        self.installed = True
        return self

    def uninstall(self, timeout: float = 5.0) -> None:
        """Remove every hook; pending registrations get up to `timeout` seconds."""
        if not self.installed:
            return
        self.installed = False
        try:
            self.scheduler.remove_listener(self._on_event)
        except Exception:
            logger.debug("chronos: listener already removed", exc_info=True)
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
            self._wrapped_aliases.clear()
        for executor, previous in executors:
            try:
                if previous is None:
                    del executor.submit_job
                else:
                    executor.submit_job = previous
            except Exception:
                logger.debug("chronos: could not unwrap %r", executor, exc_info=True)
        if getattr(self.scheduler, _ATTRIBUTE, None) is self:
            delattr(self.scheduler, _ATTRIBUTE)
        if self.registrar is not None:
            if self._owns_registrar:
                self.registrar.shutdown(timeout)
            else:
                self.registrar.flush(timeout)

    def flush_registrations(self, timeout: float = 5.0) -> bool:
        """Wait until every registration so far has been sent (for tests and shutdown)."""
        return self.registrar is None or self.registrar.flush(timeout)

    # -- job ids and definitions --------------------------------------------------------

    def job_id_of(self, job: Any) -> str:
        """The Chronos job id of an APScheduler job (cached per APScheduler id)."""
        known = self._ids.get(job.id)
        if known is not None:
            return known
        chronos_id = None
        if self._custom_job_id is not None:
            try:
                chronos_id = self._custom_job_id(job)
            except Exception:
                logger.warning("chronos: job_id callback failed for %r", job.id, exc_info=True)
        if not chronos_id:
            chronos_id = default_job_id(job)
            if chronos_id != job.id:
                chronos_id = self._claim(chronos_id, job)
        with self._lock:
            self._ids[job.id] = chronos_id
        return chronos_id

    def _claim(self, name: str, job: Any) -> str:
        """Two jobs of one function with generated ids: the second is told apart by trigger."""
        with self._lock:
            owner = self._owners.setdefault(name, job.id)
        if owner == job.id:
            return name
        digest = hashlib.sha1(str(job.trigger).encode()).hexdigest()[:8]
        return f"{name}@{digest}"

    def definition_of(self, job: Any) -> JobDefinition | None:
        """The job as registered with Chronos; None when its trigger has no equivalent."""
        info = schedule_of(job.trigger)
        if not info.registrable:
            logger.info("chronos: job %r not registered: %s", job.id, "; ".join(info.notes))
            return None
        try:
            signature: str | None = signature_hash(job.func)
        except Exception:
            signature = None
        return JobDefinition(
            id=self.job_id_of(job),
            name=str(job.name or job.id)[:512],
            schedule=info.schedule,
            run_mode=RunMode(info.run_mode),
            timezone=info.timezone,
            interval_seconds=info.interval_seconds,
            run_at=info.run_at,
            signature_hash=signature,
            description="; ".join(info.notes)[:8192] or None,
            source=Source.APSCHEDULER,
        )

    def _register_jobs(self, jobs: list[Any]) -> None:
        if self.registrar is None:
            return
        definitions = []
        for job in jobs:
            try:
                definition = self.definition_of(job)
            except Exception:
                logger.warning("chronos: could not describe job %r", job.id, exc_info=True)
                continue
            if definition is not None:
                definitions.append(definition)
        if definitions:
            self.registrar.register_jobs(definitions)

    # -- executors ----------------------------------------------------------------------

    def _wrap_executor(self, alias: str, executor: Any) -> None:
        try:
            from apscheduler.executors.pool import ProcessPoolExecutor

            if isinstance(executor, ProcessPoolExecutor) or id(executor) in self._executors:
                return  # a process pool pickles the job: its runs are reported from events
            previous = executor.__dict__.get("submit_job")
            original = executor.submit_job

            def submit_job(job: Any, run_times: list[datetime]) -> Any:
                # Kept after the job is removed: its executed event may arrive later.
                self._executor_of[job.id] = alias
                return original(self._instrumented_job(job, run_times), run_times)

            executor.submit_job = submit_job
            with self._lock:
                self._executors[id(executor)] = (executor, previous)
                self._wrapped_aliases.add(alias)
        except Exception:
            logger.warning("chronos: could not instrument executor %r", executor, exc_info=True)

    def _instrumented_job(self, job: Any, run_times: list[datetime]) -> Any:
        try:
            chronos_id = self.job_id_of(job)
            aps_id = job.id
            func = job.func
            is_coroutine = self._coroutines.get(func)
            if is_coroutine is None:
                is_coroutine = self._coroutines[func] = iscoroutinefunction_partial(func)

            def begin(scheduled_for: datetime | None) -> RunCapture | None:
                return self._begin(chronos_id, aps_id, scheduled_for)

            times = RunTimes(run_times, job.misfire_grace_time)
            wrapped = wrap_function(func, is_coroutine, begin, times)
            return clone_job(job, wrapped)
        except Exception:
            logger.warning("chronos: could not wrap job %r", getattr(job, "id", job), exc_info=True)
            return job

    def _begin(
        self, chronos_id: str, aps_id: str, scheduled_for: datetime | None
    ) -> RunCapture | None:
        try:
            return self._capture(chronos_id, aps_id, scheduled_for).start()
        except Exception:
            logger.warning("chronos: could not start capturing %r", chronos_id, exc_info=True)
            return None

    def _capture(
        self, chronos_id: str, aps_id: str, scheduled_for: datetime | None, *, note: bool = False
    ) -> RunCapture:
        # The APScheduler id goes into metadata only for reports made from events: on the
        # per-run path metadata costs a JSON round trip (and a generated id says little).
        return RunCapture(
            chronos_id,
            sink=self.sink,
            source=Source.APSCHEDULER,
            capture_console=self.capture_console,
            max_log_bytes=self.max_log_bytes,
            app_version=self._app_version,
            labels=self.labels,
            metadata={"apschedulerJobId": aps_id} if note else None,
            scheduled_for=scheduled_for,
        )

    # -- the listener -------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        try:
            code = event.code
            if code in (aps_events.EVENT_JOB_ADDED, aps_events.EVENT_JOB_MODIFIED):
                self._on_job_changed(event)
            elif code == aps_events.EVENT_JOB_REMOVED:
                self._on_job_removed(event.job_id)
            elif code == aps_events.EVENT_ALL_JOBS_REMOVED:
                for aps_id in list(self._ids):
                    self._on_job_removed(aps_id)
            elif code == aps_events.EVENT_EXECUTOR_ADDED:
                self._wrap_executor(event.alias, self.scheduler._lookup_executor(event.alias))
            elif code == aps_events.EVENT_JOB_MISSED:
                self._report_missed(event)
            elif code == aps_events.EVENT_JOB_MAX_INSTANCES:
                self._report_skipped(event)
            elif code in (aps_events.EVENT_JOB_EXECUTED, aps_events.EVENT_JOB_ERROR):
                self._report_unseen_run(event)
        except Exception:
            logger.warning("chronos: could not handle APScheduler event %r", event, exc_info=True)

    def _on_job_changed(self, event: Any) -> None:
        job = self.scheduler.get_job(event.job_id, getattr(event, "jobstore", None))
        if job is None:
            return
        with self._lock:
            self._ids.pop(job.id, None)  # a modified job may have a new function or trigger
        self._register_jobs([job])

    def _on_job_removed(self, aps_id: str) -> None:
        with self._lock:
            chronos_id = self._ids.pop(aps_id, None)
            if chronos_id is not None and self._owners.get(chronos_id) == aps_id:
                del self._owners[chronos_id]
        if chronos_id is not None and self.registrar is not None:
            self.registrar.forget_job(chronos_id)

    def _chronos_id_for_event(self, event: Any) -> str:
        known = self._ids.get(event.job_id)
        if known is not None:
            return known
        job = self.scheduler.get_job(event.job_id, getattr(event, "jobstore", None))
        return self.job_id_of(job) if job is not None else str(event.job_id)

    def _report_missed(self, event: Any) -> None:
        scheduled = getattr(event, "scheduled_run_time", None)
        chronos_id = self._chronos_id_for_event(event)
        run = self._capture(chronos_id, event.job_id, scheduled, note=True).start()
        run.finish(
            ExecutionStatus.MISSED,
            error_message=f"run scheduled for {scheduled} was missed (misfire_grace_time)",
        )

    def _report_skipped(self, event: Any) -> None:
        chronos_id = self._chronos_id_for_event(event)
        job = self.scheduler.get_job(event.job_id, getattr(event, "jobstore", None))
        limit = getattr(job, "max_instances", None)
        for scheduled in getattr(event, "scheduled_run_times", None) or [None]:
            run = self._capture(chronos_id, event.job_id, scheduled, note=True).start()
            run.finish(
                ExecutionStatus.SKIPPED,
                error_message=f"skipped: the previous run is still going (max_instances={limit})",
            )

    def _report_unseen_run(self, event: Any) -> None:
        """Executed/error of a run the wrapper did not capture (e.g. a process pool)."""
        scheduled: datetime | None = getattr(event, "scheduled_run_time", None)
        if self._executor_of.get(event.job_id) in self._wrapped_aliases:
            return  # the wrapper reported this run, with exact timing
        run = self._capture(self._chronos_id_for_event(event), event.job_id, scheduled, note=True)
        run.metadata["timing"] = "reported after the run; start and duration are not known"
        run.start()
        if event.code == aps_events.EVENT_JOB_EXECUTED:
            run.finish(ExecutionStatus.SUCCESS)
            return
        exception = getattr(event, "exception", None)
        stack = getattr(event, "traceback", None)
        if isinstance(stack, str) and stack:
            run.metadata["traceback"] = stack[-4000:]
        if isinstance(exception, BaseException):
            run.finish(ExecutionStatus.FAILED, error=exception)
        else:
            run.finish(ExecutionStatus.FAILED, error_message="the job failed (no exception given)")


def sink_settings(exporter: EventSink | None) -> tuple[EventSink, bool, int, Any]:
    """The sink, its console-capture default, its log limit and its settings (if any)."""
    sink = exporter if exporter is not None else get_exporter()
    settings = sink.settings if isinstance(sink, BatchExporter) else None
    capture_console = bool(settings.capture_console) if settings is not None else False
    max_log_bytes = settings.max_log_bytes if settings is not None else 10_000
    return sink, capture_console, max_log_bytes, settings
