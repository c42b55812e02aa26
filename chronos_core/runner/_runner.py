"""`ChronosRunner`: an application's jobs, their handlers, and when to run them.

The Python shape of the original SDK's primary API. Jobs are declared with `register()` or
the `@runner.job(...)` decorator (or with `runner.client.register_jobs([...])` plus a
handler, as in the original); `start()` runs them in the background and `run_forever()`
until SIGINT/SIGTERM. Each run is captured (status, timing, error, output) and exported
through the shared `BatchExporter`; nothing on a job's path waits on the network.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Any, Literal, Self, TypeVar

from chronos_core._client import ChronosClient
from chronos_core._config import ChronosSettings
from chronos_core._default import get_exporter
from chronos_core._exceptions import ChronosError, ConfigurationError
from chronos_core._exporter import BatchExporter
from chronos_core._models import MAX_ID_LENGTH, JobDefinition, RegisterResult, RunMode, Source
from chronos_core._versions import detect_app_version, signature_hash
from chronos_core.runner._clock import Clock, SystemClock
from chronos_core.runner._execution import Admission, JobSpec, RunExecutor, RunRequest
from chronos_core.runner._local import LocalScheduler
from chronos_core.runner._policy import JobPolicy, Overlap
from chronos_core.runner._schedule import resolve_timezone
from chronos_core.runner._server_mode import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RECONNECT_DELAY,
    DEFAULT_RECONNECT_DELAY_MAX,
    ServerTriggers,
)

__all__ = ["DEFAULT_MISFIRE_GRACE", "DEFAULT_STOP_TIMEOUT", "ChronosRunner", "RunnerMode"]

logger = logging.getLogger("chronos_core.runner")

DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_MISFIRE_GRACE = 60.0

RunnerMode = Literal["local", "server"]
F = TypeVar("F", bound=Callable[..., Any])


class _RunnerClient(ChronosClient):
    """`ChronosClient` that also tells its runner the schedules it registers."""

    def __init__(self, runner: ChronosRunner, settings: ChronosSettings) -> None:
        super().__init__(settings=settings)
        self._runner = runner

    def register_jobs(
        self, jobs: Iterable[JobDefinition | Mapping[str, Any]], **options: Any
    ) -> RegisterResult:
        """Register the jobs with the server, and schedule them locally if they have handlers."""
        models = [
            j if isinstance(j, JobDefinition) else JobDefinition.model_validate(j) for j in jobs
        ]
        self._runner._learn_definitions(models)
        return super().register_jobs(models, **options)


class ChronosRunner:
    """Runs an application's jobs on schedule, with every run recorded.

    `mode="local"` schedules with cron in this process; `mode="server"` connects to the
    server over Socket.IO and runs the triggers it sends. `exporter=` is where runs go;
    without it, a runner given `api_key`/`endpoint`/other settings makes its own exporter,
    and one given none uses the process's shared `get_exporter()`. `clock=` replaces the
    wall clock (tests). Invalid settings raise `ConfigurationError` here.
    """

    executor_class: type[RunExecutor] = RunExecutor
    scheduler_class: type[LocalScheduler] = LocalScheduler
    triggers_class: type[ServerTriggers] = ServerTriggers

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        *,
        capture_console: bool = True,
        mode: RunnerMode = "local",
        exporter: BatchExporter | None = None,
        timezone: str | None = None,
        clock: Clock | None = None,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        misfire_grace: float = DEFAULT_MISFIRE_GRACE,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
        reconnect_delay_max: float = DEFAULT_RECONNECT_DELAY_MAX,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        socketio_path: str = "socket.io",
        transports: list[str] | None = None,
        **settings: Any,
    ) -> None:
        base = exporter.settings.model_dump() if exporter is not None else {}
        given = {"api_key": api_key, "endpoint": endpoint, **settings}
        self.settings = ChronosSettings.load(
            **{**base, **{key: value for key, value in given.items() if value is not None}}
        )
        self.mode = mode
        self.timezone = resolve_timezone(timezone)
        self.capture_console = capture_console
        self.clock: Clock = clock or SystemClock()
        self.stop_timeout = stop_timeout
        self.misfire_grace = misfire_grace
        self._socket_options: dict[str, Any] = {
            "reconnect_delay": reconnect_delay,
            "reconnect_delay_max": reconnect_delay_max,
            "connect_timeout": connect_timeout,
            "socketio_path": socketio_path,
            "transports": transports,
        }
        if exporter is not None:
            self.exporter, self._owns_exporter = exporter, False
        elif api_key is not None or endpoint is not None or settings:
            self.exporter, self._owns_exporter = BatchExporter(settings=self.settings), True
        else:
            self.exporter, self._owns_exporter = get_exporter(), False
        self.runner_id = secrets.token_hex(4)
        self._jobs: dict[str, JobSpec] = {}
        self._known: dict[str, JobDefinition] = {}
        self._lock = threading.RLock()
        self._client: _RunnerClient | None = None
        self._executor: RunExecutor | None = None
        self._scheduler: LocalScheduler | None = None
        self._triggers: ServerTriggers | None = None
        self._state: Literal["new", "running", "stopped"] = "new"
        self._stop_requested = threading.Event()
        self._give_up = threading.Event()

    def __repr__(self) -> str:
        return f"<ChronosRunner mode={self.mode!r} jobs={sorted(self._jobs)} {self._state}>"

    @property
    def mode(self) -> RunnerMode:
        """`"local"` or `"server"`; may be changed until `start()`."""
        return self._mode

    @mode.setter
    def mode(self, value: RunnerMode) -> None:
        if value not in ("local", "server"):
            raise ConfigurationError(f"mode must be 'local' or 'server', got {value!r}")
        if getattr(self, "_state", "new") != "new":
            raise ConfigurationError("the mode cannot change once the runner has started")
        if value == "server":
            self.settings.require_api_key()
        self._mode = value

    @property
    def client(self) -> ChronosClient:
        """The HTTP client (`runner.client.register_jobs([...])` as in the original SDK)."""
        with self._lock:
            if self._client is None:
                self._client = _RunnerClient(self, self.settings)
            return self._client

    @property
    def job_ids(self) -> list[str]:
        """Ids of the jobs this runner holds handlers for."""
        with self._lock:
            return sorted(self._jobs)

    @property
    def connected(self) -> bool:
        """In server mode, whether the trigger connection is up."""
        return self._triggers is not None and self._triggers.connected

    # -- declaring jobs ------------------------------------------------------------------

    def register(
        self,
        job_id: str,
        handler: Callable[[], Any],
        *,
        schedule: str | None = None,
        run_mode: RunMode | str | None = None,
        run_at: datetime | str | int | None = None,
        timezone: str | None = None,
        interval_seconds: float | None = None,
        name: str | None = None,
        version: str | None = None,
        description: str | None = None,
        policy: JobPolicy | None = None,
        **policy_options: Any,
    ) -> None:
        """Hold `handler` (sync or async, no arguments) for `job_id`.

        With `schedule`, `run_at` or `interval_seconds` this also declares the job: it is
        scheduled (local mode) and registered with the server in the background. Without
        them the schedule comes from `runner.client.register_jobs` or, in server mode, from
        the server. Policy options (`overlap`, `timeout`, `retries`, ...) are `JobPolicy`'s.
        """
        if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_ID_LENGTH:
            raise ValueError(f"job_id must be a string of 1 to {MAX_ID_LENGTH} characters")
        if not callable(handler):
            raise TypeError(f"the handler of {job_id!r} is not callable: {handler!r}")
        if policy is None:
            policy = JobPolicy(**policy_options)
        elif policy_options:
            raise TypeError("pass either policy= or policy options, not both")
        declared = schedule is not None or run_at is not None or interval_seconds is not None
        definition = None
        if declared:
            mode = RunMode(run_mode) if run_mode else RunMode.ONCE if run_at else RunMode.RECURRING
            definition = JobDefinition(
                id=job_id,
                name=name or getattr(handler, "__name__", None) or job_id,
                schedule=schedule or "",
                run_mode=mode,
                run_at=run_at,
                timezone=timezone,
                interval_seconds=interval_seconds,
                version=version,
                description=description,
                signature_hash=_signature_or_none(handler),
                source=Source.RUNNER,
            )
        with self._lock:
            job = JobSpec(
                job_id,
                handler,
                policy,
                definition or self._known.get(job_id),
                register_remotely=declared,
            )
            self._jobs[job_id] = job
            running = self._state == "running"
        if running:
            self._activate(job)
            if declared:
                self._register_remotely([job])

    def job(
        self,
        job_id: str | None = None,
        *,
        schedule: str | None = None,
        name: str | None = None,
        run_mode: RunMode | str | None = None,
        run_at: datetime | str | int | None = None,
        timezone: str | None = None,
        interval_seconds: float | None = None,
        version: str | None = None,
        description: str | None = None,
        overlap: Overlap | str = Overlap.SKIP,
        timeout: float | None = None,
        retries: int = 0,
        policy: JobPolicy | None = None,
        **policy_options: Any,
    ) -> Callable[[F], F]:
        """Decorator: declare a job and its handler in one place; the function is unchanged.

        `@runner.job("reports", schedule="0 * * * *", overlap="skip", timeout=30, retries=2)`.
        The job id defaults to the function's `module.qualname`.
        """
        if policy is None:
            policy = JobPolicy(
                overlap=Overlap(overlap), timeout=timeout, retries=retries, **policy_options
            )

        def decorate(func: F) -> F:
            self.register(
                job_id or f"{func.__module__}.{func.__qualname__}",
                func,
                schedule=schedule or "",
                run_mode=run_mode,
                run_at=run_at,
                timezone=timezone,
                interval_seconds=interval_seconds,
                name=name,
                version=version,
                description=description,
                policy=policy,
            )
            return func

        return decorate

    def _learn_definitions(self, definitions: list[JobDefinition]) -> None:
        changed = []
        with self._lock:
            for definition in definitions:
                self._known[definition.id] = definition
                job = self._jobs.get(definition.id)
                if job is not None and not job.register_remotely:
                    job.definition = definition
                    changed.append(job)
            running = self._state == "running"
        if running and self._scheduler is not None:
            for job in changed:
                self._scheduler.add(job)

    # -- running -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start running jobs in background threads; returns at once."""
        with self._lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise ChronosError("a stopped runner cannot be started again; make a new one")
            self._executor = self.executor_class(
                sink=self.exporter,
                runner_id=self.runner_id,
                capture_console=self.capture_console,
                max_log_bytes=self.settings.max_log_bytes,
                app_version=detect_app_version(settings=self.settings),
            )
            if self.mode == "local":
                self._scheduler = self.scheduler_class(
                    self._executor,
                    self.clock,
                    default_timezone=self.timezone,
                    misfire_grace=self.misfire_grace,
                )
            else:
                self._triggers = self.triggers_class(
                    self._executor,
                    self._jobs_snapshot,
                    url=self.settings.endpoint,
                    api_key=self.settings.require_api_key(),
                    **self._socket_options,
                )
            self._state = "running"
            jobs = list(self._jobs.values())
        for job in jobs:
            self._activate(job)
        if self._scheduler is not None:
            self._scheduler.start()
        if self._triggers is not None:
            self._triggers.start()
        self._register_remotely([job for job in jobs if job.register_remotely])
        logger.info("chronos: runner started in %s mode with %d job(s)", self.mode, len(jobs))
        return self

    def _jobs_snapshot(self) -> Mapping[str, JobSpec]:
        with self._lock:
            return dict(self._jobs)

    def _activate(self, job: JobSpec) -> None:
        if self._scheduler is not None and not self._scheduler.add(job):
            logger.warning(
                "chronos: %s has no schedule (give one to register() or runner.client."
                "register_jobs()); in local mode it runs only through run_now()",
                job.job_id,
            )
        if self._triggers is not None:
            self._triggers.join(job.job_id)

    def _register_remotely(self, jobs: list[JobSpec]) -> None:
        definitions = [job.definition for job in jobs if job.definition is not None]
        if definitions and not self.settings.disabled:
            # Queued on the exporter: sent from its thread, retried through outages.
            self.exporter.register_jobs(definitions)

    def next_due(self, job_id: str) -> datetime | None:
        """In local mode, when the job is next due; None if never (or in server mode)."""
        return self._scheduler.next_due(job_id) if self._scheduler is not None else None

    def run_now(self, job_id: str) -> Admission:
        """Run a job now, outside its schedule (its overlap policy still applies)."""
        with self._lock:
            job = self._jobs.get(job_id)
            executor = self._executor
        if job is None:
            raise KeyError(f"no handler registered for {job_id!r}")
        if executor is None:
            raise ChronosError("start() the runner first")
        return executor.submit(RunRequest(job, self.clock.now().astimezone(UTC)))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no run is in progress; False if some still are after `timeout`."""
        executor = self._executor
        return executor is None or executor.wait_idle(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Take no new runs, wait up to `timeout` for running ones, flush; True if all ended.

        Runs still going after `timeout` are recorded as `cancelled` (async ones are
        cancelled; a sync handler's thread cannot be stopped and is abandoned).
        """
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return True
            self._state = "stopped"
        timeout = self.stop_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        assert self._executor is not None
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._triggers is not None:
            self._triggers.stop_accepting()
        self._executor.close_admission()
        finished = False
        while not finished:
            left = deadline - time.monotonic()
            if left <= 0 or self._give_up.is_set():
                break
            finished = self._executor.wait_idle(min(left, 0.1))
        if not finished:
            logger.warning("chronos: %d run(s) still going at shutdown", self._executor.active)
            self._executor.abandon()
        if self._triggers is not None:
            self._triggers.close()
        self._executor.close()
        flush_timeout = self.settings.shutdown_timeout
        if self._owns_exporter:
            self.exporter.shutdown(flush_timeout)
        else:
            self.exporter.flush(flush_timeout)
        if self._client is not None:
            self._client.close()
        logger.info("chronos: runner stopped")
        return finished

    def run_forever(self, stop_timeout: float | None = None) -> None:
        """Run until SIGINT or SIGTERM, then stop gracefully (a second signal stops waiting)."""
        previous: dict[signal.Signals, Any] = {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self._stop_requested.is_set():
                self._give_up.set()
            self._stop_requested.set()

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            while not self._stop_requested.wait(0.5):
                pass
            self.stop(stop_timeout)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def request_stop(self) -> None:
        """Make `run_forever()` return (as SIGTERM would), from any thread."""
        self._stop_requested.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signature_or_none(handler: Callable[..., Any]) -> str | None:
    try:
        return signature_hash(handler)
    except Exception:
        logger.debug("chronos: no signature hash for %r", handler, exc_info=True)
        return None
