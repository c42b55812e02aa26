"""`ChronosWorkerMixin`: every job an RQ worker performs becomes one Chronos execution.

Where each piece runs, for the forking `Worker`:

- parent, before the fork: `fork_work_horse` opens a `HorseChannel` and notes what it knows
  of the run in a `HorsePlan` (ids, attempt, queue, worker, its context), a handful of
  attribute stores, and sets this job object's `perform` (an instance attribute) to the
  worker's `HorseCall`, armed with the plan and the job's own `perform`. With
  console capture on, one `ConsoleCapture` of the whole process is begun, paused, at the
  worker's first job and kept for the worker's life; each horse switches its copy on around
  the job.
  The parent does nothing more until the horse has exited: each page it writes while the
  horse lives is copied too.
- horse: the wrapped `perform` reads the clocks right before the job function and right
  after, inside RQ's death penalty, so a `JobTimeoutException` is seen as `timeout` and RQ's
  own bookkeeping (Redis writes, callbacks) is not counted in the duration. A job that
  returned, printed nothing and did not ask to be retried leaves a tuple of four values;
  anything else is concluded by a `RunCapture` made there (status, error with stack and
  snippet, output). When `perform_job` is done, that goes through the pipe.
- parent, after the horse exited: `monitor_work_horse` removes `job.perform` (disarming the
  `HorseCall`), reads the pipe and hands the report with the plan to the exporter, whose
  thread makes the event; a horse that died without reporting (killed by a signal, by the
  OOM killer, or by RQ itself after `job_timeout + 60 s`) is reported from what the parent
  knows.

Why so little per job: a forked horse copies every page it writes (in Python, touching an
object writes its reference count), and the parent faults once on every page it writes after
each fork; a bare no-op job is some 1,650 page faults in the horse and 760 in the parent, so
each object built per job shows in the worker's throughput.

`SimpleWorker` runs jobs in-process and records to the exporter directly; `SpawnWorker`'s
horse is a fresh interpreter without the channel, so it flushes (bounded) before exiting.
"""

from __future__ import annotations

import gc
import logging
import mmap
import os
import sys
from collections.abc import Callable

# Names the horse calls are imported here rather than looked up where they are used: a
# forked horse would otherwise look them up (and write to the objects involved) on every job.
from contextvars import Context, copy_context
from datetime import UTC, datetime
from os import getpid
from time import perf_counter_ns, time_ns
from typing import TYPE_CHECKING, Any, ClassVar

from rq import Retry
from rq import worker as rq_worker
from rq.timeouts import JobTimeoutException
from rq.worker import SimpleWorker

# Only the SDK's plain-Python parts: with its relay, the worker never loads pydantic or httpx,
# and loads the capture code (`RunCapture`) only once a run needs it (`_load_capture`).
from chronos_core._limits import ExecutionStatus, Source
from chronos_core._tracing import current_trace_id
from chronos_integrations.rq._channel import (
    IN_PIPE,
    RELAYED,
    HorseChannel,
    HorsePlan,
    encode_frame,
    horse_send,
    report_size,
    to_wire,
)
from chronos_integrations.rq._relay import RelayLink, RelayRefused

if TYPE_CHECKING:
    from chronos_core import EventSink
    from chronos_core._capture import RunCapture
    from chronos_core._console import ConsoleCapture

    Setup = tuple[EventSink | RelayLink, bool, int, str | None]

__all__ = ["ChronosWorkerMixin"]

logger = logging.getLogger("chronos_integrations.rq")

# A horse without a channel (SpawnWorker) waits at most this long for its events to leave.
DEFAULT_HORSE_FLUSH_TIMEOUT = 2.0
# RQ does not count attempts of exception retries; the attempt number is kept in job.meta.
ATTEMPT_META_KEY = "chronos_attempt"
# How often (in forks) the worker collects its garbage in full: see `fork_work_horse`.
FULL_COLLECTION_EVERY = 1_000
SUCCESS = ExecutionStatus.SUCCESS
# In the byte after the report's state (`HorsePlan.state`): the horse loaded the capture code.
CAPTURE_LOADED = 1
_CAPTURE_MODULE = "chronos_core._capture"
# Workers whose jobs run in the worker's own process, or in a fresh interpreter that reports
# for itself (`SpawnWorker`, RQ 2.2+): they export from their own process, with no relay.
_IN_PROCESS_WORKERS: tuple[type, ...] = tuple(
    cls for cls in (SimpleWorker, getattr(rq_worker, "SpawnWorker", None)) if cls is not None
)


def _is_timeout(error: BaseException) -> bool:
    return isinstance(error, JobTimeoutException)


class ChronosWorkerMixin:
    """Mix into any RQ worker class, before it: `class MyWorker(ChronosWorkerMixin, Worker)`.

    Class attributes to override: `chronos_exporter` (default: the shared exporter from
    the `CHRONOS_*` environment), `chronos_relay` (a forking worker without an exporter of
    its own exports from a relay process: see `_relay`; False: from the worker process),
    `chronos_capture_console` (default: the exporter's `capture_console` setting),
    `chronos_labels`, `chronos_register_cron` (register the schedules of RQ cron jobs found
    in Redis), and the method `chronos_job_id(job)`.
    """

    chronos_exporter: ClassVar[EventSink | None] = None
    chronos_relay: ClassVar[bool] = True
    chronos_capture_console: ClassVar[bool | None] = None
    chronos_labels: ClassVar[tuple[str, ...]] = ()
    chronos_register_cron: ClassVar[bool] = True
    chronos_horse_flush_timeout: ClassVar[float] = DEFAULT_HORSE_FLUSH_TIMEOUT
    #: Collect the worker's garbage in full every this many forks (see `fork_work_horse`).
    chronos_full_collection_every: ClassVar[int] = FULL_COLLECTION_EVERY

    _chronos_plan: HorsePlan | None = None
    _chronos_console: ConsoleCapture | None = None
    _chronos_setup: Setup | None = None
    _chronos_link: RelayLink | None = None
    _chronos_channel: HorseChannel | None = None
    _chronos_state: mmap.mmap | None = None
    _chronos_deferred: Any = None
    _chronos_call: HorseCall | None = None
    _chronos_disabled = False
    _chronos_killed: int | None = None
    _chronos_pipe_size: int = 0
    _chronos_forks: int = 0
    _chronos_cron: Any = None
    # The context the last plan was made in, and the trace read from it.
    _chronos_trace: tuple[Context, str | None] | None = None

    # -- configuration -----------------------------------------------------------------

    def chronos_job_id(self, job: Any) -> str:
        """The Chronos job id: `job.meta["chronos_job_id"]` if set, else the function name."""
        meta = getattr(job, "meta", None) or {}
        custom = meta.get("chronos_job_id")
        if isinstance(custom, str) and custom:
            return custom
        return str(job.func_name or job.id)

    def _chronos(self) -> Setup | None:
        """(sink or relay, capture_console, max_log_bytes, app_version), resolved once per
        worker."""
        if self._chronos_setup is not None or self._chronos_disabled:
            return self._chronos_setup
        try:
            console = self.chronos_capture_console
            link = self._chronos_start_relay() if self._chronos_uses_relay() else None
            if link is not None:
                self._chronos_link = link
                if console is None:
                    console = link.capture_console
                limit = link.max_log_bytes
                self._chronos_setup = (link, console, limit, link.app_version)
            else:
                from chronos_core import BatchExporter, detect_app_version, get_exporter

                sink = self.chronos_exporter or get_exporter()
                settings = sink.settings if isinstance(sink, BatchExporter) else None
                if isinstance(sink, BatchExporter):
                    self._chronos_deferred = sink.record_deferred
                if console is None:
                    console = bool(settings.capture_console) if settings is not None else False
                limit = settings.max_log_bytes if settings is not None else 10_000
                self._chronos_setup = (sink, console, limit, detect_app_version())
            self._chronos_pipe_size = report_size(limit)
            if link is None:
                _load_capture()  # exporting from here: the exporter has loaded most of it
            elif console:
                # Loaded now, among the worker's long-lived objects, rather than at its first
                # job among RQ's objects of that job: its horses then write some 15 fewer
                # pages per job (measured as `benchmarks/rq_faults.py` does, in two runs of
                # ten workers each).
                import chronos_core._console  # noqa: F401
        except Exception as error:
            self._chronos_disabled = True
            logger.warning("chronos: RQ jobs will not be reported: %s", error)
        return self._chronos_setup

    def _chronos_start_relay(self) -> RelayLink | None:
        """The relay, started; None (logged) if it could not run, to export from here instead.
        A relay that refused (no API key, Chronos disabled) raises: this process would too."""
        try:
            return RelayLink.start()
        except RelayRefused:
            raise
        except Exception as error:
            logger.warning("chronos: no relay process (%s); exporting from the worker", error)
            return None

    def _chronos_uses_relay(self) -> bool:
        """Whether this worker exports from a relay process: a forking worker, with no
        exporter of its own, in a process whose code has not configured the shared one."""
        if not self.chronos_relay or self.chronos_exporter is not None:
            return False
        if isinstance(self, _IN_PROCESS_WORKERS):
            return False
        default = sys.modules.get("chronos_core._default")
        return getattr(default, "_default", None) is None

    # -- parent process ----------------------------------------------------------------

    def work(self, *args: Any, **kwargs: Any) -> Any:
        # Set up (and start the relay) now, not at the first job.
        if self._chronos() is not None and self.chronos_register_cron:
            try:
                from chronos_integrations.rq._cron import CronRegistration

                self._chronos_cron = CronRegistration.start_for(self)
            except Exception:
                logger.warning("chronos: could not start cron registration", exc_info=True)
        try:
            return super().work(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._chronos_stop()

    def _chronos_stop(self) -> None:
        """Undo what `work()` and the first jobs set up: cron registration, the console
        capture, the horses' channel, and the relay (which sends what it holds and exits; the
        next `work()` starts another)."""
        cron, self._chronos_cron = self._chronos_cron, None
        if cron is not None:
            cron.stop()
        console, self._chronos_console = self._chronos_console, None
        if console is not None:
            console.end()
        channel, self._chronos_channel = self._chronos_channel, None
        if channel is not None:
            channel.close()
        link = self._chronos_link
        if link is not None:
            self._chronos_link = self._chronos_setup = None
            link.close()

    def run_maintenance_tasks(self) -> None:
        # RQ runs these when the worker starts, then every `maintenance_interval` seconds.
        super().run_maintenance_tasks()  # type: ignore[misc]
        if self._chronos_cron is not None:
            try:
                self._chronos_cron.refresh()
            except Exception as error:
                logger.debug("chronos: cron registration failed: %s", error)

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        if self._chronos_plan is not None:
            self._chronos_discard(job)  # a previous horse's, never collected
        plan = None
        # Read directly once set up: each function the worker calls per job is a page it
        # writes (the code object's reference count) after every fork.
        setup = self._chronos_setup
        if setup is None and not self._chronos_disabled:
            setup = self._chronos()
        if setup is not None:
            try:
                plan = self._chronos_plan_for(job, queue, setup)
                call = self._chronos_call
                if call is None:
                    call = self._chronos_call = HorseCall()
                call.arm(job.perform, plan, job)
                job.perform = call
            except Exception:
                logger.warning("chronos: could not prepare job %r", job.id, exc_info=True)
                plan = None
        self._chronos_plan = plan
        self._chronos_killed = None
        # Nothing more here once the horse is forked but taking back the frozen objects (below;
        # it moves two list heads): whatever the parent writes while its horse lives costs a
        # page copy, so `job.perform` is removed in `_chronos_collect`, after the horse has
        # exited.
        #
        # The parent's objects go to the permanent generation for the fork, so that the
        # horse's garbage collections never walk them: a collection writes to every object it
        # walks, and each page the horse writes is a page copy (Python's documented use of
        # `gc.freeze()` before `fork()`). The parent takes them back at once; the horse never
        # returns here (it ends with `os._exit`). Taken back, they are all in the oldest
        # generation, which Python collects only once enough objects have aged into it: the
        # parent's own cyclic garbage (about one object per job) would pile up there, so the
        # parent collects in full every `chronos_full_collection_every` forks, now, with no
        # horse alive.
        self._chronos_forks += 1
        if self._chronos_forks % self.chronos_full_collection_every == 0:
            gc.collect()
        gc.freeze()
        try:
            super().fork_work_horse(job, queue)  # type: ignore[misc]
        except BaseException:
            self._chronos_discard(job)
            raise
        finally:
            gc.unfreeze()

    def _chronos_plan_for(self, job: Any, queue: Any, setup: Setup) -> HorsePlan:
        """The next horse's run, as far as the parent knows it (see `HorsePlan`)."""
        _, capture_console, limit, app_version = setup
        console = None
        if capture_console:
            # One capture of the whole process for the worker's life, paused: each horse
            # switches its copy on while its job runs. Of the process rather than of the
            # worker's context, so that the context the horses inherit holds nothing of it.
            console = self._chronos_console
            if console is None:
                from chronos_core._console import ConsoleCapture

                console = ConsoleCapture(limit)
                console.paused = True
                console.begin_process()
                self._chronos_console = console
        # One pipe and one shared byte for the worker's life, reused by every horse.
        channel = self._chronos_channel
        if channel is None:
            channel = self._chronos_channel = HorseChannel(self._chronos_pipe_size)
        state = self._chronos_state
        if state is None:
            state = self._chronos_state = mmap.mmap(-1, mmap.PAGESIZE)
        state[0] = state[1] = 0
        plan = HorsePlan(
            channel,
            job_id=self.chronos_job_id(job)[:256],
            exec_id=f"rq:{job.id}:{_execution_id(self, job)}"[:256],
            attempt=_attempt_of(job),
            rq_job_id=str(job.id),
            queue=getattr(queue, "name", None),
            worker=getattr(self, "name", None),
            labels=tuple(self.chronos_labels),
            max_log_bytes=limit,
            app_version=app_version,
            console=console,
        )
        plan.state = state
        link = self._chronos_link
        if link is not None:
            # The run's facts and the trace of the context the horse is forked in, read here:
            # the horse sends its report to the relay with them (`horse_send`), or the parent
            # forwards it. The trace is read again only when that context changed (it can only
            # change with it: OpenTelemetry keeps its current context in a context variable).
            # The worker's loop sets no context variable from one job to the next, so the copy
            # shares the last one's variables and compares equal at once, where reading the
            # trace touches OpenTelemetry's objects: a page each (see the module's docstring).
            context = plan.context
            trace = self._chronos_trace
            if trace is None or trace[0] != context:
                trace = self._chronos_trace = (context, plan.trace_of(None))
            plan.relayed = (plan.facts, trace[1])
            # The horse writes to the relay itself only while no frame of the worker's waits
            # half written (the horse's would land in its middle): `link.idle`, read here
            # without the property's call.
            if not link.pending:
                plan.relay = link.fd
        return plan

    def monitor_work_horse(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().monitor_work_horse(job, queue, *args, **kwargs)  # type: ignore[misc]
        finally:
            self._chronos_collect(job, queue)

    def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any) -> Any:
        self._chronos_killed = ret_val if isinstance(ret_val, int) else -1
        return super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[misc]

    def _chronos_discard(self, job: Any) -> None:
        """Unwrap `job.perform` and empty the pipe without collecting anything."""
        plan, self._chronos_plan = self._chronos_plan, None
        if plan is not None:
            plan.channel.drain()
            self._chronos_unwrap(job)

    def _chronos_unwrap(self, job: Any) -> None:
        vars(job).pop("perform", None)
        call = self._chronos_call
        if call is not None:
            call.disarm()

    def _chronos_collect(self, job: Any, queue: Any) -> None:
        plan, self._chronos_plan = self._chronos_plan, None
        killed, self._chronos_killed = self._chronos_killed, None
        setup = self._chronos_setup
        if plan is None or setup is None:
            return
        try:
            self._chronos_unwrap(job)
            if plan.state[1] == CAPTURE_LOADED:
                _load_capture()  # for the next horses to inherit
            state = plan.state[0]
            if state == RELAYED:  # the usual case: the horse sent its report to the relay
                return
            payload = plan.channel.drain()
            if payload and state == IN_PIPE:
                link = self._chronos_link
                if link is not None:
                    assert plan.relayed is not None  # set with the link (`_chronos_plan_for`)
                    facts, trace_id = plan.relayed
                    link.send_run(facts, trace_id, payload)
                    return
                from chronos_integrations.rq._report import HorseReport

                report = HorseReport(plan, payload)
                if self._chronos_deferred is not None:
                    self._chronos_deferred(report)
                else:
                    setup[0].record(report.event())  # type: ignore[union-attr]
            elif killed is not None:
                self._chronos_report_killed(job, plan, killed)
        except Exception:
            logger.warning("chronos: could not collect the work horse's report", exc_info=True)

    def _chronos_report_killed(self, job: Any, plan: HorsePlan, wait_status: int) -> None:
        """The horse died before reporting: say so from here, with what the parent knows."""
        started = getattr(job, "started_at", None)
        elapsed = (datetime.now(UTC) - started).total_seconds() if started else 0.0
        timeout = getattr(job, "timeout", None)
        timed_out = isinstance(timeout, int | float) and timeout > 0 and elapsed >= timeout
        detail = f"waitpid status {wait_status}"
        if wait_status > 0 and os.WIFSIGNALED(wait_status):
            detail = f"killed by signal {os.WTERMSIG(wait_status)}"
        run = plan.run()
        run.metadata["timing"] = "reported by the parent worker; the start is RQ's"
        run.start()
        fields = run.conclude(
            ExecutionStatus.TIMEOUT if timed_out else ExecutionStatus.FAILED,
            error_type="WorkHorseTerminated",
            error_message=f"the work horse ended without reporting ({detail})",
        )
        if fields is None:
            return
        link, setup = self._chronos_link, self._chronos_setup
        if link is not None:
            link.send_run(plan.facts, fields.get("trace_id"), encode_frame(to_wire(fields)))
        elif setup is not None:
            setup[0].record(run.event_from(fields))  # type: ignore[union-attr]

    # -- the process that runs the job -------------------------------------------------

    def _chronos_run(self, job: Any, queue: Any) -> RunCapture | None:
        """A run of `job` recorded in this process (`SimpleWorker`, a `SpawnWorker` horse)."""
        setup = self._chronos()
        if setup is None:
            return None
        sink, console, limit, app_version = setup
        if isinstance(sink, RelayLink):
            return None  # a forking worker's parent, which runs no job itself
        try:
            from chronos_core._capture import RunCapture

            return RunCapture(
                self.chronos_job_id(job)[:256],
                sink=sink,
                source=Source.RQ,
                exec_id=f"rq:{job.id}:{_execution_id(self, job)}"[:256],
                attempt=_attempt_of(job),
                capture_console=console,
                max_log_bytes=limit,
                app_version=app_version,
                labels=self.chronos_labels,
                metadata={"rqJobId": job.id},
                queue=getattr(queue, "name", None),
                worker=getattr(self, "name", None),
            )
        except Exception:
            logger.warning(
                "chronos: could not capture job %r", getattr(job, "id", job), exc_info=True
            )
            return None

    def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        plan = self._chronos_plan
        # In a horse when the channel was opened by another process (its parent). No helper of
        # the channel's: each function a horse calls is a page or two it copies.
        if plan is not None and getpid() != plan.channel.parent_pid:
            # A forked horse: the parent planned the run and armed `job.perform`.
            try:
                return super().perform_job(job, queue, *args, **kwargs)  # type: ignore[misc]
            finally:
                if not plan.sent:
                    self._chronos_report(plan, job)
        # In-process (SimpleWorker), or a horse that is a fresh interpreter (SpawnWorker).
        run = self._chronos_run(job, queue)
        if run is not None:
            try:
                job.perform = _timed_perform(job.perform, run, job)
            except Exception:
                logger.warning("chronos: could not wrap job %r", job.id, exc_info=True)
                run = None
        try:
            return super().perform_job(job, queue, *args, **kwargs)  # type: ignore[misc]
        finally:
            if run is not None:
                try:
                    del job.perform
                    self._chronos_deliver(run)
                except Exception:
                    logger.warning("chronos: could not deliver job %r", job.id, exc_info=True)

    def _chronos_report(self, plan: HorsePlan, job: Any) -> None:
        """In a forked horse, once the job is done: its outcome to the parent."""
        try:
            if plan.outcome is None and plan.fields is None:
                _conclude(
                    plan,
                    job,
                    time_ns(),
                    perf_counter_ns(),
                    None,
                    ExecutionStatus.FAILED,
                    error_message="the job did not run to completion",
                )
            report = plan.report()
            if report is None:
                return
            # Plain values cross (see `_channel`), to the relay or the parent.
            if horse_send(plan, report):
                return
            # Too large for the pipe: made and sent from here, as a horse without a channel
            # (with a relay, through an exporter of the horse's own).
            setup = self._chronos_setup
            if setup is None:
                return
            sink = setup[0]
            if isinstance(sink, RelayLink):
                from chronos_core import get_exporter

                sink = get_exporter()
            from chronos_integrations.rq._report import event_of

            sink.record(event_of(plan, report))
            self._chronos_flush(sink)
        except Exception:
            logger.warning("chronos: could not report job %r", plan.job_id, exc_info=True)

    def _chronos_deliver(self, run: RunCapture) -> None:
        run.finish(ExecutionStatus.FAILED, error_message="the job did not run to completion")
        if getattr(self, "_is_horse", False) and run.sink is not None:
            self._chronos_flush(run.sink)

    def _chronos_flush(self, sink: EventSink) -> None:
        # The horse ends with os._exit() right after this: no atexit hook will run.
        from chronos_core import BatchExporter

        if isinstance(sink, BatchExporter) and not sink.flush(self.chronos_horse_flush_timeout):
            logger.warning("chronos: the work horse exits with events unsent")


def _execution_id(worker: Any, job: Any) -> str:
    execution = getattr(worker, "execution", None)
    execution_id = getattr(execution, "id", None)
    if execution_id:
        return str(execution_id)
    started = getattr(job, "started_at", None)
    return str(int(started.timestamp() * 1000)) if started else "0"


def _timed_perform(perform: Callable[[], Any], run: RunCapture, job: Any) -> Callable[[], Any]:
    """`job.perform` with the capture around it, finished with its outcome; results and
    exceptions pass through. For a worker that runs the job in its own process."""

    def timed() -> Any:
        run.start()
        try:
            result = perform()
        except BaseException as exc:
            _finish(run, job, exc, None)
            raise
        _finish(run, job, None, result)
        return result

    return timed


class HorseCall:
    """What a forked horse calls as `job.perform`: the job timed, its outcome noted in the
    plan. One per worker, armed by the parent for each job (`arm`) and disarmed once the horse
    has exited (`disarm`).

    Not a closure made per job: a new function refers to its code, its module's globals and
    builtins, its names and its module's name, long-lived objects whose reference counts the
    worker would write when making it, before the fork, and again when freeing it, after the
    horse's exit (a page each time, see the module's docstring). Arming writes three slots of
    this long-lived object, which the horse reads.

    The common outcome (returned, printed nothing, no `Retry`) costs two clock readings on
    each side of the job, a pid and a tuple: every object the horse touches is a page it
    copies. Anything else is concluded by a `RunCapture` made here (`_conclude`).
    """

    __slots__ = ("job", "perform", "plan")

    def __init__(self) -> None:
        # Unset (None) only while no horse can call it: `job.perform` is ours only while armed.
        self.perform: Any = None
        self.plan: Any = None
        self.job: Any = None

    def arm(self, perform: Callable[[], Any], plan: HorsePlan, job: Any) -> None:
        self.perform, self.plan, self.job = perform, plan, job

    def disarm(self) -> None:
        self.perform = self.plan = self.job = None

    def __call__(self) -> Any:
        perform: Callable[[], Any] = self.perform
        plan: HorsePlan = self.plan
        job = self.job
        console = plan.console
        if console is not None:
            console.paused = False
        wall = time_ns()
        start = perf_counter_ns()
        try:
            result = perform()
        except BaseException as exc:
            end = perf_counter_ns()
            if console is not None:
                console.paused = True
            _conclude(plan, job, wall, start, end, _failure_status(exc, job), error=exc)
            raise
        end = perf_counter_ns()
        plain = True
        if console is not None:
            console.paused = True
            plain = not console.written
        if plain:
            try:
                plain = not isinstance(result, Retry)  # RQ 2.3+: a job may ask to be retried
            except Exception:
                plain = True
        if plain:
            # A span begun in the horse (around the job) is read here; else the parent reads
            # the trace of the context it forked in (one C call tells them apart).
            context = plan.context
            trace = None if context == copy_context() else current_trace_id()
            outcome = plan.outcome = (wall, end - start, getpid(), trace)
            # Sent at once; on failure `perform_job` tries again and falls back.
            try:
                plan.sent = horse_send(plan, outcome)
            except Exception:
                logger.debug("chronos: could not send the outcome", exc_info=True)
        else:
            _conclude(plan, job, wall, start, end, _success_status(result))
        return result


def _conclude(
    plan: HorsePlan,
    job: Any,
    wall_ns: int,
    start_ns: int,
    end_ns: int | None,
    status: ExecutionStatus | None,
    *,
    error: BaseException | None = None,
    error_message: str | None = None,
) -> None:
    """In the horse, an outcome other than a plain success: `plan.fields` from a run."""
    try:
        _note_attempt(job, status, plan.attempt)
        if plan.state is not None and _CAPTURE_MODULE not in sys.modules:
            plan.state[1] = CAPTURE_LOADED  # by this horse (`plan.run()`), for the parent
        run = plan.run().start_from(wall_ns, start_ns, console=plan.console)
        plan.console = None  # ended by the run
        plan.fields = run.conclude(
            status, error=error, error_message=error_message, ended_ns=end_ns
        )
    except Exception:
        logger.warning("chronos: could not conclude the run of %s", plan.job_id, exc_info=True)


def _load_capture() -> None:
    """Load the capture code in the worker, and build what its first use in each horse
    would (the default redaction rules), once: from the first horse that needed it on, the
    horses inherit it instead of loading it themselves.

    Not at import: a worker whose jobs only ever succeed quietly never needs it, and each
    module the worker holds makes every fork dearer (see the module's docstring). A horse
    that needs it first imports it itself (some milliseconds, once). The worker starts no
    thread of its own, and RQ's (its pub/sub listener) does not import these modules, so no
    import lock of theirs can be held across the fork.
    """
    from chronos_core._capture import RunCapture  # noqa: F401
    from chronos_core._redact import Redactor

    Redactor.default()


def _attempt_of(job: Any) -> int:
    meta = getattr(job, "meta", None) or {}
    attempt = meta.get(ATTEMPT_META_KEY, 1)
    return attempt if isinstance(attempt, int) and attempt >= 1 else 1


def _finish(run: RunCapture, job: Any, error: BaseException | None, result: Any) -> None:
    try:
        outcome = _success_status(result) if error is None else _failure_status(error, job)
        _note_attempt(job, outcome, run.attempt)
        run.finish(outcome, error=error)
    except Exception:
        logger.warning("chronos: could not classify the run of %s", run.job_id, exc_info=True)
        run.finish(error=error)


def _note_attempt(job: Any, status: ExecutionStatus | None, attempt: int) -> None:
    """A run to be retried: the next attempt's number, in the job's meta. RQ saves the job
    (meta included) when it requeues it, so the next attempt reads it from there without an
    extra Redis write of ours."""
    if status is ExecutionStatus.RETRYING:
        job.meta[ATTEMPT_META_KEY] = attempt + 1


def _failure_status(error: BaseException, job: Any) -> ExecutionStatus | None:
    try:
        if _is_timeout(error):
            return ExecutionStatus.TIMEOUT
        retries_left = getattr(job, "retries_left", None)
        if isinstance(retries_left, int) and retries_left > 0:
            return ExecutionStatus.RETRYING
    except Exception:
        logger.debug("chronos: could not classify a failure", exc_info=True)
    return None  # RunCapture's default: failed (cancelled for KeyboardInterrupt)


def _success_status(result: Any) -> ExecutionStatus:
    try:
        if isinstance(result, Retry):  # RQ 2.3+: a job may ask to be retried by returning this
            return ExecutionStatus.RETRYING
    except Exception:
        logger.debug("chronos: could not check for Retry", exc_info=True)
    return SUCCESS
