"""`instrument(app)` and `uninstrument(app)`: wiring the hooks to one Celery app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

# httpx imports httpcore on first use, from whichever thread sends first. A prefork pool forks
# while the main process's threads (schedule registration, the exporter) may be in the middle
# of that import, and the child would inherit a half-initialised module and never send
# anything. Importing it here, in the main thread before any fork, rules that out.
import httpcore  # noqa: F401

from chronos_core import (
    ChronosSettings,
    EventSink,
    Redactor,
    get_exporter,
)
from chronos_core._config import DEFAULT_MAX_LOG_BYTES
from chronos_integrations.celery._beat import BeatHooks
from chronos_integrations.celery._running import DEFAULT_RUNNING_AFTER, RunningReporter
from chronos_integrations.celery._runs import RunFactory
from chronos_integrations.celery._signals import TaskHooks
from chronos_integrations.celery._worker import WorkerHooks

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_MAX_ARGS_BYTES",
    "DEFAULT_RUNNING_AFTER",
    "CeleryIntegration",
    "instrument",
    "uninstrument",
]

logger = logging.getLogger("chronos_integrations.celery")

#: Bound on the flush a pool child does before it exits, and a worker at shutdown.
DEFAULT_FLUSH_TIMEOUT = 2.0
#: Bytes kept of each of `args` and `kwargs` when `capture_args=True`.
DEFAULT_MAX_ARGS_BYTES = 1_024

_ATTRIBUTE = "_chronos_integration"
_lock = threading.Lock()


class CeleryIntegration:
    """The Chronos hooks of one Celery app. Made by `instrument()`; see its arguments."""

    def __init__(
        self,
        app: Any,
        *,
        exporter: EventSink | None = None,
        job_id: Callable[[Any], str | None] | None = None,
        capture_console: bool | None = None,
        capture_args: bool = False,
        max_args_bytes: int = DEFAULT_MAX_ARGS_BYTES,
        max_log_bytes: int | None = None,
        running_after: float | None = DEFAULT_RUNNING_AFTER,
        register_schedules: bool = True,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        redactor: Redactor | None = None,
        app_version: str | None = None,
        job_version: str | None = None,
    ) -> None:
        if max_args_bytes < 0:
            raise ValueError(f"max_args_bytes must be >= 0, got {max_args_bytes}")
        if running_after is not None and running_after < 0:
            raise ValueError(f"running_after must be >= 0 or None, got {running_after}")
        if flush_timeout < 0:
            raise ValueError(f"flush_timeout must be >= 0, got {flush_timeout}")
        self.app = app
        self._exporter = exporter
        self._exporter_failed = False
        settings = getattr(exporter, "settings", None)
        if not isinstance(settings, ChronosSettings):
            settings = None
        if capture_console is None:
            capture_console = settings.capture_console if settings else _env_capture_console()
        if max_log_bytes is None:
            max_log_bytes = settings.max_log_bytes if settings else DEFAULT_MAX_LOG_BYTES
        self.runs = RunFactory(
            sink=self.sink,
            job_id=job_id,
            capture_console=capture_console,
            capture_args=capture_args,
            max_args_bytes=max_args_bytes,
            max_log_bytes=max_log_bytes,
            emit_running=running_after == 0,
            redactor=redactor,
            app_version=app_version,
            job_version=job_version,
        )
        running = None
        if running_after:
            running = RunningReporter(self.sink, running_after)
        self.tasks = TaskHooks(app, self.runs, running)
        self.worker = WorkerHooks(self.tasks, self.sink, flush_timeout)
        self.beat = BeatHooks(app, self.runs, self.sink, register=register_schedules)
        self.installed = False

    def sink(self) -> EventSink | None:
        """Where events go: the given exporter, else the shared one (None if unconfigured)."""
        exporter = self._exporter
        if exporter is not None or self._exporter_failed:
            return exporter
        try:
            exporter = self._exporter = get_exporter()
        except Exception as exc:
            self._exporter_failed = True
            logger.warning("chronos: Celery tasks are not recorded: %s", exc)
        return exporter

    def install(self) -> None:
        """Connect every hook (done by `instrument()`)."""
        if self.installed:
            return
        self.tasks.connect()
        self.worker.connect()
        self.beat.connect()
        self.installed = True

    def uninstall(self) -> None:
        """Disconnect every hook (done by `uninstrument()`)."""
        if not self.installed:
            return
        self.beat.disconnect()
        self.worker.disconnect()
        self.tasks.disconnect()
        self.installed = False


def _env_capture_console() -> bool:
    try:
        return ChronosSettings.load().capture_console
    except Exception:
        return False


def instrument(app: Any, **options: Any) -> CeleryIntegration:
    """Record every task run and register the beat schedule of `app`. Idempotent.

    Call it where the app is defined, so that the worker, its pool children and beat all run
    it before they start. Options (all keyword):

    - `exporter`: an `EventSink` (default: `chronos_core.get_exporter()`, from `CHRONOS_*`);
    - `job_id`: `callable(task) -> str | None` choosing a task's job id (default: its name;
      a task's own `chronos_job_id` attribute wins);
    - `capture_console`: capture each run's stdout/stderr (default: the exporter's setting);
    - `capture_args`: record task arguments, redacted and cut to `max_args_bytes` (off);
    - `running_after`: report `running` for a task still running after this many seconds
      (1.0; 0 reports it as each task starts, None never);
    - `register_schedules`: register the beat schedule with the server (on);
    - `flush_timeout`: bound on the flush at pool child exit and worker shutdown (2 s);
    - `max_log_bytes`, `redactor`, `app_version`, `job_version`: as for `RunCapture`.

    Calling it again returns the installed integration; the options of the first call stay.
    """
    with _lock:
        existing = app.__dict__.get(_ATTRIBUTE)
        if isinstance(existing, CeleryIntegration) and existing.installed:
            return existing
        integration = CeleryIntegration(app, **options)
        integration.install()
        setattr(app, _ATTRIBUTE, integration)
        return integration


def uninstrument(app: Any) -> bool:
    """Disconnect the hooks `instrument(app)` connected. Returns whether there were any."""
    with _lock:
        integration = app.__dict__.pop(_ATTRIBUTE, None)
        if not isinstance(integration, CeleryIntegration):
            return False
        integration.uninstall()
        return True
