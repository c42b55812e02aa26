"""Running jobs: overlap admission, attempts with timeouts and retries, each one captured.

Sync handlers run in a thread per run (a timed-out attempt's thread is abandoned, since a
Python thread cannot be killed); async handlers run as tasks on one event loop owned by
the executor, in a thread of its own, and are cancelled on timeout. Every attempt is a
`RunCapture` with its own `execId` (`<run id>:<attempt>`), because the server merges events
that share an `execId`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from chronos_core._capture import RunCapture
from chronos_core._models import ExecutionEvent, ExecutionStatus, JobDefinition, Source
from chronos_core._sink import EventSink
from chronos_core.runner._policy import JobPolicy, Overlap

__all__ = ["Admission", "JobSpec", "RunExecutor", "RunRequest"]

logger = logging.getLogger("chronos_core.runner")

_STOPPED_MESSAGE = "the runner stopped before this run finished"


@dataclass(eq=False)
class JobSpec:
    """A job the runner holds a handler for."""

    job_id: str
    handler: Callable[[], Any]
    policy: JobPolicy = field(default_factory=JobPolicy)
    definition: JobDefinition | None = None
    """What is known of its schedule (from `register`, `@job` or `runner.client`)."""
    register_remotely: bool = False
    """Whether the runner sends `definition` to the server when it starts."""

    @property
    def is_async(self) -> bool:
        """Whether the handler is a coroutine function."""
        handler = self.handler
        return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - an object with async __call__
        )

    @property
    def version(self) -> str | None:
        """The job version recorded on each run."""
        return self.definition.version if self.definition is not None else None


@dataclass(frozen=True, eq=False)
class RunRequest:
    """One due run of a job."""

    job: JobSpec
    scheduled_for: datetime
    trigger_id: str | None = None
    coalesced: int = 0
    """Earlier due times of the same job folded into this run (the runner was not running)."""
    on_finished: Callable[[RunRequest, ExecutionEvent | None], None] | None = None


class Admission(StrEnum):
    """What `RunExecutor.submit` did with a request."""

    STARTED = "started"
    QUEUED = "queued"
    SKIPPED = "skipped"
    STOPPING = "stopping"


@dataclass(eq=False)
class _ActiveRun:
    request: RunRequest
    run_id: str
    capture: RunCapture | None = None
    last_event: ExecutionEvent | None = None
    future: Future[None] | None = None


@dataclass
class _JobState:
    running: int = 0
    waiting: deque[RunRequest] = field(default_factory=deque)


class RunExecutor:
    """Admits runs according to each job's overlap policy and executes them."""

    def __init__(
        self,
        *,
        sink: EventSink | None,
        runner_id: str,
        capture_console: bool,
        max_log_bytes: int,
        app_version: str | None,
    ) -> None:
        self._sink = sink
        self.runner_id = runner_id
        self._capture_console = capture_console
        self._max_log_bytes = max_log_bytes
        self._app_version = app_version
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._jobs: dict[str, _JobState] = {}
        self._active: set[_ActiveRun] = set()
        self._sequence = itertools.count(1)
        self._closed = False
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    # -- admission -----------------------------------------------------------------------

    def submit(self, request: RunRequest) -> Admission:
        """Start, queue or skip `request` per its job's overlap policy. Never raises."""
        try:
            return self._submit(request)
        except Exception:
            logger.warning(
                "chronos: could not start a run of %s", request.job.job_id, exc_info=True
            )
            return Admission.SKIPPED

    def _submit(self, request: RunRequest) -> Admission:
        policy = request.job.policy
        with self._lock:
            if self._closed:
                return Admission.STOPPING
            state = self._jobs.setdefault(request.job.job_id, _JobState())
            if state.running and policy.overlap is not Overlap.ALLOW:
                if policy.overlap is Overlap.QUEUE and len(state.waiting) < policy.max_queued:
                    state.waiting.append(request)
                    return Admission.QUEUED
                run = None
            else:
                state.running += 1
                run = self._begin(request)
        if run is None:
            reason = (
                "the previous run is still running (overlap=skip)"
                if policy.overlap is Overlap.SKIP
                else f"{policy.max_queued} run(s) already waiting (overlap=queue)"
            )
            self._record_outcome(request, ExecutionStatus.SKIPPED, reason, "skipped")
            return Admission.SKIPPED
        self._launch(run)
        return Admission.STARTED

    def _run_id(self, request: RunRequest) -> str:
        # `<job>:<scheduled epoch ms>-<runner>-<n>`: the contract's `jobId:epochMs`, made
        # unique per runner process and per run.
        millis = int(request.scheduled_for.timestamp() * 1000)
        return f"{request.job.job_id[:200]}:{millis}-{self.runner_id}-{next(self._sequence):x}"

    def _begin(self, request: RunRequest) -> _ActiveRun:
        run = _ActiveRun(request, self._run_id(request))
        self._active.add(run)
        return run

    def _launch(self, run: _ActiveRun) -> None:
        if run.request.job.is_async:
            future = asyncio.run_coroutine_threadsafe(self._run_async(run), self._event_loop())
            run.future = future
            future.add_done_callback(lambda _f: self._run_ended(run))
        else:
            name = f"chronos-run:{run.request.job.job_id}"[:64]
            threading.Thread(target=self._run_sync, args=(run,), name=name, daemon=True).start()

    def _run_ended(self, run: _ActiveRun) -> None:
        request = run.request
        # Before the run stops counting as active, so a shutdown waiting for idle also
        # waits for this (server mode reports the end of the run through it).
        if request.on_finished is not None:
            try:
                request.on_finished(request, run.last_event)
            except Exception:
                logger.warning("chronos: a run-finished callback failed", exc_info=True)
        following = None
        with self._lock:
            self._active.discard(run)
            state = self._jobs[request.job.job_id]
            state.running -= 1
            if state.waiting and not self._closed:
                following = self._begin(state.waiting.popleft())
                state.running += 1
            self._idle.notify_all()
        if following is not None:
            self._launch(following)

    # -- one run, sync -------------------------------------------------------------------

    def _run_sync(self, run: _ActiveRun) -> None:
        policy = run.request.job.policy
        try:
            for attempt in range(1, policy.max_attempts + 1):
                if self._stopping.is_set() and attempt > 1:
                    break
                if not self._attempt_sync(run, attempt, attempt < policy.max_attempts):
                    break
                if self._stopping.wait(policy.backoff(attempt)):
                    break
        except Exception:
            logger.warning(
                "chronos: the run of %s failed inside the SDK", run.run_id, exc_info=True
            )
        finally:
            self._run_ended(run)

    def _attempt_sync(self, run: _ActiveRun, attempt: int, may_retry: bool) -> bool:
        """Run one attempt; True if it failed and may be retried."""
        capture = run.capture = self._capture(run, attempt)
        timeout = run.request.job.policy.timeout
        done = threading.Event()
        errors: list[BaseException] = []

        def body() -> None:
            capture.start()
            try:
                result = run.request.job.handler()
                if inspect.isawaitable(result):  # a sync callable that returned a coroutine
                    asyncio.run_coroutine_threadsafe(_awaited(result), self._event_loop()).result()
            except BaseException as error:
                errors.append(error)
            finally:
                done.set()

        if timeout is None:
            body()
        else:
            context = contextvars.copy_context()
            worker = threading.Thread(
                target=context.run, args=(body,), name=f"{threading.current_thread().name}#a"
            )
            worker.daemon = True
            worker.start()
            if not done.wait(timeout):
                run.last_event = capture.finish(
                    ExecutionStatus.TIMEOUT,
                    error_message=f"timed out after {timeout:g}s "
                    "(the sync handler's thread was left running)",
                    error_type="TimeoutError",
                )
                return False
        error = errors[0] if errors else None
        retry = may_retry and isinstance(error, Exception)
        status = ExecutionStatus.RETRYING if retry else None
        run.last_event = capture.finish(status, error=error)
        return retry

    # -- one run, async ------------------------------------------------------------------

    async def _run_async(self, run: _ActiveRun) -> None:
        policy = run.request.job.policy
        handler = run.request.job.handler
        for attempt in range(1, policy.max_attempts + 1):
            capture = run.capture = self._capture(run, attempt).start()
            scope = asyncio.timeout(policy.timeout)
            try:
                async with scope:
                    await handler()
            except asyncio.CancelledError:
                run.last_event = capture.finish(
                    ExecutionStatus.CANCELLED, error_message=_STOPPED_MESSAGE
                )
                raise
            except TimeoutError as error:
                if scope.expired():
                    run.last_event = capture.finish(
                        ExecutionStatus.TIMEOUT,
                        error_message=f"timed out after {policy.timeout:g}s (cancelled)",
                        error_type="TimeoutError",
                    )
                    return
                failure: BaseException = error
            except Exception as error:
                failure = error
            else:
                run.last_event = capture.finish()
                return
            retry = attempt < policy.max_attempts and not self._stopping.is_set()
            status = ExecutionStatus.RETRYING if retry else ExecutionStatus.FAILED
            run.last_event = capture.finish(status, error=failure)
            if not retry:
                return
            await asyncio.sleep(policy.backoff(attempt))

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="chronos-runner-loop", daemon=True)
                thread.start()
                ready.wait(10)
                self._loop, self._loop_thread = loop, thread
            return self._loop

    # -- records -------------------------------------------------------------------------

    def _capture(self, run: _ActiveRun, attempt: int) -> RunCapture:
        request = run.request
        metadata: dict[str, Any] = {"runner": self.runner_id, "run": run.run_id}
        if request.coalesced:
            metadata["coalesced"] = request.coalesced
        return RunCapture(
            request.job.job_id,
            sink=self._sink,
            source=Source.RUNNER,
            exec_id=f"{run.run_id}:{attempt}",
            attempt=attempt,
            capture_console=self._capture_console,
            max_log_bytes=self._max_log_bytes,
            job_version=request.job.version,
            app_version=self._app_version,
            metadata=metadata,
            trigger_id=request.trigger_id,
            scheduled_for=request.scheduled_for,
            emit_running=True,
        )

    def _record_outcome(
        self, request: RunRequest, status: ExecutionStatus, message: str, suffix: str
    ) -> None:
        """A run that never started: skipped, or cancelled by shutdown while queued."""
        run = _ActiveRun(request, self._run_id(request))
        capture = self._capture(run, 1)
        capture.exec_id = f"{run.run_id}:{suffix}"
        capture.emit_running = False
        event = capture.start().finish(status, error_message=message)
        if request.on_finished is not None:
            try:
                request.on_finished(request, event)
            except Exception:
                logger.warning("chronos: a run-finished callback failed", exc_info=True)

    # -- shutdown ------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Runs started and not yet finished."""
        with self._lock:
            return len(self._active)

    def close_admission(self) -> None:
        """Take no new runs; runs waiting behind a running one are recorded as cancelled."""
        with self._lock:
            self._closed = True
            self._stopping.set()
            waiting = [r for state in self._jobs.values() for r in state.waiting]
            for state in self._jobs.values():
                state.waiting.clear()
        for request in waiting:
            self._record_outcome(request, ExecutionStatus.CANCELLED, _STOPPED_MESSAGE, "cancelled")

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no run is active; False if some still are after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._active:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def abandon(self, grace: float = 1.0) -> None:
        """Cancel async runs and record sync runs still going as cancelled."""
        with self._lock:
            runs = list(self._active)
        for run in runs:
            if run.future is not None:
                run.future.cancel()
        self.wait_idle(grace)
        with self._lock:
            runs = list(self._active)
        for run in runs:
            if run.capture is not None:
                event = run.capture.finish(
                    ExecutionStatus.CANCELLED,
                    error_message=f"{_STOPPED_MESSAGE} (its thread was still running)",
                )
                run.last_event = event or run.last_event

    def close(self) -> None:
        """Stop the event loop thread (after `abandon`)."""
        with self._lock:
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            if not thread.is_alive():
                loop.close()


async def _awaited(awaitable: Any) -> None:
    await awaitable
