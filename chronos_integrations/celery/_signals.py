"""The task lifecycle: Celery's task signals turned into one execution per run.

Where each signal is sent decides what it can do:

- `task_prerun`, `task_success`, `task_failure` (an exception in the task), `task_retry` and
  `task_postrun` are sent by the process and thread that run the task, around its body. The
  run is started at prerun (console capture begins in the task's own context) and finished at
  the first of success/failure/retry, or at postrun for outcomes without a signal (`Ignore`,
  `Reject`). Runs in flight are kept in a dict keyed by task id, so that the usual end of a
  run is one dict pop, without reading the task's request again. A retry reuses its task's id,
  and a thread pool can run the retry while the first attempt is still unwinding: a run whose
  task id is already in flight goes to a second dict, keyed by `(task id, attempt)`, and only
  while that one holds anything are attempts told apart by reading the request.
- A hard time limit, a terminated task and a lost pool child are seen only by the worker's
  main process (`task_failure` with `TimeLimitExceeded`/`WorkerLostError`, `task_revoked`),
  which never started a run for them. It reports the run's final state itself, under the same
  execId, from the request it received (`task_received` keeps a weak reference to it); the
  child's `running` event, if it got out, is superseded at the server.

Every handler is guarded: an error of ours is logged and the task goes on unaffected.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from itertools import islice
from typing import Any

from celery import signals, states
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from chronos_core import ExecutionStatus, RunCapture
from chronos_integrations.celery import _runs
from chronos_integrations.celery._receivers import SignalReceivers
from chronos_integrations.celery._running import RunningReporter
from chronos_integrations.celery._runs import LeanRun, RunFactory, attempt_of

__all__ = ["TaskHooks"]

logger = logging.getLogger("chronos_integrations.celery")

# How many finished (task id, attempt) pairs are remembered at least, so that a second signal
# about the same run (task_internal_error then task_failure, a hard time limit reported twice)
# does not produce a second event. Up to twice as many are kept: the oldest half is forgotten
# at once, rather than one pair per run.
FINISHED_MEMORY = 4_096

_FINISHED_LIMIT = 2 * FINISHED_MEMORY
_TIMEOUTS = (SoftTimeLimitExceeded, TimeLimitExceeded)
_SUCCESS = states.SUCCESS
_IGNORED = states.IGNORED
_SUCCESS_STATUS = ExecutionStatus.SUCCESS
_Key = tuple[str, int]
_Run = RunCapture | LeanRun


def _failure_status(error: BaseException | None) -> ExecutionStatus:
    if isinstance(error, _TIMEOUTS):
        return ExecutionStatus.TIMEOUT
    return ExecutionStatus.FAILED


class TaskHooks(SignalReceivers):
    """Receivers of the task signals for one app; `connect()` and `disconnect()` them."""

    def __init__(self, app: Any, runs: RunFactory, running: RunningReporter | None) -> None:
        self.app = app
        self.runs = runs
        self.running = running
        # Runs in flight: by task id, and further attempts of a task id already in `_active`.
        self._active: dict[str, _Run] = {}
        self._more: dict[_Key, _Run] = {}
        self._finished: dict[_Key, None] = {}
        self._received: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._our_task_types: set[type] = set()
        receivers: list[tuple[Any, Callable[..., None]]] = [
            (signals.task_received, self._on_received),
            (signals.task_prerun, self._on_prerun),
            (signals.task_failure, self._on_failure),
            (signals.task_retry, self._on_retry),
            (signals.task_internal_error, self._on_internal_error),
            (signals.task_revoked, self._on_revoked),
            (signals.task_postrun, self._on_postrun),
        ]
        if not runs.lean:
            # Console capture ends at task_success, before Celery logs the task's success;
            # a lean run (nothing captured) ends at task_postrun: one signal fewer per task.
            receivers.append((signals.task_success, self._on_success))
        self._receivers = tuple(receivers)

    def watch_received(self, watch: bool) -> None:
        """Listen to `task_received` (the default) or not.

        Only a worker whose pool runs tasks in other processes (prefork) needs the request the
        main process received, to report runs its pool child could not (a hard time limit, a
        lost child, a terminated task). A solo or thread pool runs them in the main process,
        which sees every run start: there, one signal receiver fewer per task.
        """
        if watch:
            signals.task_received.connect(self._on_received, weak=False)
        else:
            signals.task_received.disconnect(self._on_received)

    def disconnect(self) -> None:
        """Disconnect every receiver; runs in flight are forgotten, not reported."""
        super().disconnect()
        if self.running is not None:
            self.running.stop()
        self.reset()

    def reset(self) -> None:
        """Forget per-process state (in a new pool child, after fork)."""
        self._active = {}
        self._more = {}
        self._finished = {}
        self._received = weakref.WeakValueDictionary()
        if self.running is not None:
            self.running.reset()

    @property
    def in_flight(self) -> int:
        """Runs started in this process and not finished yet."""
        return len(self._active) + len(self._more)

    def runs_in_flight(self) -> list[_Run]:
        """The runs in flight, as a snapshot (read by the running reporter's thread)."""
        # `list()` of a dict's values runs no Python code: the GIL makes each copy atomic.
        return list(self._active.values()) + list(self._more.values())

    # -- helpers -------------------------------------------------------------------------

    def _ours(self, task: Any) -> bool:
        """Whether `task` belongs to this app (signals are sent for every app's tasks)."""
        if type(task) in self._our_task_types:
            return True
        if task is None or getattr(task, "app", None) is not self.app:
            return False
        # Each task has a class of its own, bound to one app for good: asked once per class
        # (`Task.app` is a class property that checks the binding on every read).
        self._our_task_types.add(type(task))
        return True

    def _add_another(self, task_id: str, run: _Run, other: _Run) -> None:
        """Note `run` in flight, `other` being in `_active` under the same task id."""
        if other.attempt == run.attempt:
            self._active[task_id] = run  # the same attempt again (a redelivery) replaces it
        else:
            self._more[(task_id, run.attempt)] = run

    def _take(self, task_id: str, attempt: int | None, task: Any = None) -> _Run | None:
        """The run of `task_id` in flight, no longer in flight.

        `attempt` None: the run this thread is running (`task`'s current request tells which,
        when several attempts of `task_id` are in flight).
        """
        active = self._active
        if not self._more:
            if attempt is None:
                return active.pop(task_id, None)
            run = active.get(task_id)
            if run is None or run.attempt != attempt:
                return None
            del active[task_id]
            return run
        if attempt is None:
            attempt = attempt_of(task.request)
        run = active.get(task_id)
        if run is None or run.attempt != attempt:
            return self._more.pop((task_id, attempt), None)
        del active[task_id]
        # Another attempt of the same task id, if one is in flight, takes its place. (`list()`
        # copies the keys in one step: a thread pool's other threads may add to `_more`.)
        for key in list(self._more):
            if key[0] == task_id:
                active[task_id] = self._more.pop(key)
                break
        return run

    def _is_in_flight(self, task_id: str, attempt: int) -> bool:
        run = self._active.get(task_id)
        if run is not None and run.attempt == attempt:
            return True
        return (task_id, attempt) in self._more

    def _remember(self, key: _Key) -> None:
        finished = self._finished
        finished[key] = None
        if len(finished) > _FINISHED_LIMIT:
            # `list()` of an islice over a dict runs no Python code: no other thread's
            # insertion can come in between.
            for old in list(islice(finished, FINISHED_MEMORY)):
                finished.pop(old, None)

    def _finish(
        self,
        task: Any,
        task_id: str | None,
        status: ExecutionStatus | None,
        *,
        error: BaseException | None = None,
        request: Any = None,
    ) -> None:
        if not task_id:
            return
        key = (task_id, attempt_of(request if request is not None else task.request))
        run = self._take(task_id, key[1])
        if run is not None:
            self._remember(key)
            run.finish(status, error=error)
            return
        if key in self._finished:
            return
        if status is None or status is ExecutionStatus.SUCCESS:
            return  # a run we never saw start: nothing trustworthy to say
        self._report_remote(task, task_id, status, error=error)

    def _report_remote(
        self,
        task: Any,
        task_id: str,
        status: ExecutionStatus,
        *,
        error: BaseException | None = None,
        request: Any = None,
        message: str | None = None,
    ) -> None:
        """Final state of a run executed (or never started) elsewhere, from the main process."""
        received = self._received.get(task_id)
        context = request
        if received is not None:
            context = received._context if context is None else context
        if context is None:
            context = task.request
        key = (task_id, attempt_of(context))
        if key in self._finished or self._is_in_flight(task_id, key[1]):
            return
        self._remember(key)
        self.runs.report(
            task,
            task_id,
            context,
            status,
            error=error,
            message=message,
            started=getattr(received, "time_start", None),
            pid=getattr(received, "worker_pid", None),
        )

    # -- receivers -----------------------------------------------------------------------

    def _on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        try:
            if request is not None:
                self._received[request.id] = request
        except Exception:
            logger.debug("chronos: task_received hook failed", exc_info=True)

    def _on_prerun(
        self,
        sender: Any = None,
        task_id: str | None = None,
        task: Any = None,
        args: Any = None,
        kwargs: Any = None,
        signal: Any = None,
        **_: Any,
    ) -> None:
        # Every argument Celery sends is named (`signal` too, though unused): the call then
        # puts nothing in `**_`. The same in `_on_postrun`.
        try:
            # `_ours`, its usual answer inlined (a task class already seen).
            if not task_id or (type(task) not in self._our_task_types and not self._ours(task)):
                return
            # `task.request`: the top of the task's request stack, read here from the stack's
            # storage for this thread (three Python calls fewer than the property, a quarter
            # of the receivers' own work); anything unexpected (another kind of stack, an
            # empty one) falls back to the property.
            try:
                local = task.request_stack._local
                request = local.__storage__[local.__ident_func__()]["stack"][-1]
            except Exception:
                request = task.request
            runs = self.runs
            if runs.lean:  # `RunFactory.start`'s choice, without its call
                run: _Run = LeanRun(runs, task, task_id, request, args, kwargs)
            else:
                run = runs.start(task, task_id, request, args, kwargs)
            other = self._active.setdefault(task_id, run)
            if other is not run:
                self._add_another(task_id, run, other)
            running = self.running
            # Its thread is started in each process that runs tasks (the pid `_runs` keeps
            # is reset after fork: no system call per task).
            if running is not None and running.pid != _runs._pid:
                running.start(self.runs_in_flight)
        except Exception:
            logger.warning("chronos: could not start recording task %s", task_id, exc_info=True)

    def _on_success(self, sender: Any = None, **_: Any) -> None:
        try:
            if self._ours(sender):
                request = sender.request
                self._finish(sender, request.id, ExecutionStatus.SUCCESS, request=request)
        except Exception:
            logger.warning("chronos: task_success hook failed", exc_info=True)

    def _on_failure(
        self,
        sender: Any = None,
        task_id: str | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        try:
            if self._ours(sender):
                self._finish(sender, task_id, _failure_status(exception), error=exception)
        except Exception:
            logger.warning("chronos: task_failure hook failed", exc_info=True)

    def _on_retry(
        self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any
    ) -> None:
        try:
            if not self._ours(sender) or request is None:
                return
            key = (request.id, attempt_of(request))
            run = self._take(*key)
            if run is None:
                # Sent from the main process when a task is cancelled by a lost broker
                # connection: the message is redelivered and the same attempt runs again.
                return
            self._remember(key)
            error = getattr(reason, "exc", None)
            if not isinstance(error, BaseException):
                error = reason if isinstance(reason, BaseException) else None
            run.finish(ExecutionStatus.RETRYING, error=error)
        except Exception:
            logger.warning("chronos: task_retry hook failed", exc_info=True)

    def _on_internal_error(
        self,
        sender: Any = None,
        task_id: str | None = None,
        request: Any = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        try:
            if self._ours(sender) and task_id:
                key = (task_id, attempt_of(request))
                run = self._take(*key)
                if run is not None:
                    self._remember(key)
                    run.finish(ExecutionStatus.FAILED, error=exception)
        except Exception:
            logger.warning("chronos: task_internal_error hook failed", exc_info=True)

    def _on_revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        signum: Any = None,
        expired: bool = False,
        **_: Any,
    ) -> None:
        try:
            if not self._ours(sender) or request is None:
                return
            if expired:
                message = "expired before a worker started it"
            elif terminated:
                message = f"revoked and terminated (signal {signum})"
            else:
                message = "revoked before it started"
            self._report_remote(
                sender, request.id, ExecutionStatus.CANCELLED, request=request, message=message
            )
        except Exception:
            logger.warning("chronos: task_revoked hook failed", exc_info=True)

    def _on_postrun(
        self,
        sender: Any = None,
        task_id: str | None = None,
        task: Any = None,
        state: str | None = None,
        signal: Any = None,
        args: Any = None,
        kwargs: Any = None,
        retval: Any = None,
        **_: Any,
    ) -> None:
        try:
            if not task_id or (type(task) not in self._our_task_types and not self._ours(task)):
                return
            # The usual case, one run of this task id in flight: a dict pop.
            run = self._take(task_id, None, task) if self._more else self._active.pop(task_id, None)
            if run is None:
                return
            if state != _SUCCESS and state != _IGNORED:
                # REJECTED: the message goes back to the queue (or the main process reports
                # the failure), and the same attempt may run again under the same execId.
                # No state: a BaseException is unwinding the task (the pool child is being
                # killed for a hard time limit or a terminating revoke), and the worker's main
                # process reports the run. Either way, end the console capture silently.
                run.sink = None
                run.finish()
                return
            # SUCCESS: a lean run ends here (a captured one already ended at task_success).
            # `Ignore` (raised by `Task.replace()`, among others) ends a run without error.
            # `_remember`, inlined but for the rare trim.
            finished = self._finished
            finished[(task_id, run.attempt)] = None
            if len(finished) > _FINISHED_LIMIT:
                self._remember((task_id, run.attempt))
            run.finish(_SUCCESS_STATUS)
        except Exception:
            logger.warning("chronos: task_postrun hook failed", exc_info=True)
