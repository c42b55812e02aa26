"""Worker processes: start clean after fork, flush before exit.

- `worker_init` (the main process, before the pool starts): with a solo or thread pool,
  `task_received` is not listened to (see `TaskHooks.watch_received`).
- `worker_ready` (the main process) and `worker_process_init` (a prefork pool child, right
  after fork) give the worker's node name. In a new child, per-process state of ours starts
  empty. The exporter needs nothing: `BatchExporter` resets its queue and thread after
  fork by itself (`os.register_at_fork`).
- `worker_process_shutdown` (a pool child about to end, by recycling with
  `worker_max_tasks_per_child` or at worker shutdown): billiard ends the child with
  `os._exit`, so no `atexit` hook runs. The exporter is shut down here, bounded by
  `flush_timeout`; what is still pending then is spooled when a spool is configured.
- `worker_shutdown` (the main process, warm shutdown included): flush, bounded, for what the
  main process itself reported (hard time limits, revocations) and for solo and thread pools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import signals
from celery.concurrency import get_implementation

from chronos_integrations.celery._receivers import SignalReceivers
from chronos_integrations.celery._signals import TaskHooks

__all__ = ["WorkerHooks"]

logger = logging.getLogger("chronos_integrations.celery")

# Pools that run every task in the worker's main process, which sees each run start.
_SAME_PROCESS_POOLS = frozenset({"celery.concurrency.solo", "celery.concurrency.thread"})


class WorkerHooks(SignalReceivers):
    """Receivers of the worker lifecycle signals."""

    def __init__(self, tasks: TaskHooks, sink: Callable[[], Any], flush_timeout: float) -> None:
        self.tasks = tasks
        self._sink = sink
        self.flush_timeout = flush_timeout
        self._receivers = (
            (signals.worker_init, self._on_worker_init),
            (signals.worker_ready, self._on_worker_ready),
            (signals.worker_process_init, self._on_process_init),
            (signals.worker_process_shutdown, self._on_process_shutdown),
            (signals.worker_shutdown, self._on_worker_shutdown),
        )

    def _on_worker_init(self, sender: Any = None, **_: Any) -> None:
        try:
            if getattr(sender, "app", None) is not self.tasks.app:
                return
            pool = get_implementation(sender.pool_cls)
            self.tasks.watch_received(pool.__module__ not in _SAME_PROCESS_POOLS)
        except Exception:
            logger.warning("chronos: worker_init hook failed", exc_info=True)

    def _on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        try:
            if getattr(sender, "app", None) is not self.tasks.app:
                return
            # The worker's node name (`celery@host`); a task's request only has the host name.
            if sender.hostname:
                self.tasks.runs.worker_name = str(sender.hostname)
            # Make the main process's HTTP client now, in the thread that forks the pool.
            # Made lazily by the exporter's thread, it could be half-way through creating its
            # TLS context (OpenSSL holds locks there) when the pool forks a child, and that
            # child would hang the first time it makes its own.
            getattr(self._sink(), "client", None)
        except Exception:
            logger.warning("chronos: worker_ready hook failed", exc_info=True)

    def _on_process_init(self, sender: Any = None, **_: Any) -> None:
        try:
            self.tasks.reset()
            if isinstance(sender, str) and sender:
                self.tasks.runs.worker_name = sender
        except Exception:
            logger.warning("chronos: worker_process_init hook failed", exc_info=True)

    def _on_process_shutdown(self, **_: Any) -> None:
        try:
            sink = self._sink()
            stop = getattr(sink, "shutdown", None) or getattr(sink, "flush", None)
            if stop is not None and not stop(self.flush_timeout):
                logger.warning(
                    "chronos: pool process exiting with events not sent after %.1fs",
                    self.flush_timeout,
                )
        except Exception:
            logger.warning("chronos: worker_process_shutdown hook failed", exc_info=True)

    def _on_worker_shutdown(self, **_: Any) -> None:
        try:
            flush = getattr(self._sink(), "flush", None)
            if flush is not None and not flush(self.flush_timeout):
                logger.warning(
                    "chronos: worker stopping with events not sent after %.1fs",
                    self.flush_timeout,
                )
        except Exception:
            logger.warning("chronos: worker_shutdown hook failed", exc_info=True)
