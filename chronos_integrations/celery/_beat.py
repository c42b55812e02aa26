"""Beat: register the schedule, and stamp each run it sends with its job and due time.

Registration happens when beat starts (`beat_init`, with every entry the scheduler holds, so
custom schedulers such as django-celery-beat's are covered) and when a worker is ready
(`worker_ready`, with `app.conf.beat_schedule`, since a worker has no scheduler). The
exporter's thread sends the definitions: a slow or absent server never delays start-up.

A message sent by beat gets three headers in `before_task_publish`: its job id, its beat
entry and the time it was due (`scheduledFor`). The scheduler's `apply_entry` is wrapped on
the running scheduler instance, not on the class, to put the entry in a context variable for
the duration of the send; `before_task_publish` runs inside it, in the same thread.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import signals

from chronos_core import ChronosClient, ChronosSettings, JobDefinition
from chronos_integrations.celery._receivers import SignalReceivers
from chronos_integrations.celery._runs import (
    HEADER_BEAT_ENTRY,
    HEADER_JOB_ID,
    HEADER_SCHEDULED_FOR,
    RunFactory,
)
from chronos_integrations.celery._schedules import (
    BeatEntry,
    entries_from_mapping,
    entries_from_scheduler,
    entry_job_ids,
    job_definition,
)

__all__ = ["BeatHooks", "due_time"]

logger = logging.getLogger("chronos_integrations.celery")

REGISTER_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class _Sending:
    entry: str
    job_id: str
    scheduled_for: datetime | None


_sending: contextvars.ContextVar[_Sending | None] = contextvars.ContextVar(
    "chronos_celery_beat_sending", default=None
)


def due_time(entry: Any) -> datetime | None:
    """When a due beat entry was meant to run (its schedule's next time after its last run)."""
    try:
        sched = entry.schedule
        now = sched.now()
        remaining = sched.remaining_estimate(entry.last_run_at)
        if not isinstance(remaining, timedelta):
            return None
        due: datetime = now + min(remaining, timedelta(0))
        if due.tzinfo is None:
            due = sched.maybe_make_aware(due)
        return due.astimezone(UTC)
    except Exception:
        logger.debug("chronos: no due time for beat entry %r", entry, exc_info=True)
        return None


class BeatHooks(SignalReceivers):
    """Schedule registration and beat message stamping for one app."""

    def __init__(
        self,
        app: Any,
        runs: RunFactory,
        sink: Callable[[], Any],
        *,
        register: bool,
        client_factory: Callable[[], ChronosClient | None] | None = None,
    ) -> None:
        self.app = app
        self.runs = runs
        self._sink = sink
        self.register_enabled = register
        self._client_factory = client_factory or self._default_client
        self._job_ids: dict[str, str] = {}
        self._wrapped: list[Any] = []
        self.registered: list[JobDefinition] = []
        self._receivers = (
            (signals.beat_init, self._on_beat_init),
            (signals.worker_ready, self._on_worker_ready),
            (signals.before_task_publish, self._on_before_publish),
        )

    def disconnect(self) -> None:
        """Disconnect every receiver and unwrap the schedulers wrapped."""
        super().disconnect()
        for scheduler in self._wrapped:
            scheduler.__dict__.pop("apply_entry", None)
        self._wrapped.clear()

    # -- registration --------------------------------------------------------------------

    def _job_id_of_task_name(self, name: str) -> str:
        task = self.app.tasks.get(name)
        return self.runs.job_id_of_task(task) if task is not None else name

    def definitions(self, entries: list[BeatEntry]) -> list[JobDefinition]:
        """Job definitions of `entries` (the unconvertible ones are logged and left out)."""
        self._job_ids.update(entry_job_ids(entries, self._job_id_of_task_name))
        jobs = []
        for entry in entries:
            job = job_definition(
                entry, self._job_ids[entry.name], self.app, version=self.runs.job_version
            )
            if job is not None:
                jobs.append(job)
        return jobs

    def _default_client(self) -> ChronosClient | None:
        settings = getattr(self._sink(), "settings", None)
        if not isinstance(settings, ChronosSettings):
            settings = ChronosSettings.load()
        if settings.disabled or not settings.api_key:
            return None
        return ChronosClient(settings=settings)

    def register(self, entries: list[BeatEntry]) -> threading.Thread | None:
        """Register the definitions of `entries` without blocking.

        A `BatchExporter` sends them from its own thread; for another sink a client is made
        here (in the caller's thread: see `_worker` on fork safety) and a daemon thread sends.
        Returns that thread, if one was started.
        """
        jobs = self.definitions(entries)
        self.registered = jobs
        if not jobs or not self.register_enabled:
            return None
        queue_jobs = getattr(self._sink(), "register_jobs", None)
        if queue_jobs is not None:
            queue_jobs(jobs)
            return None
        client = self._client_factory()
        if client is None:
            logger.info("chronos: no API key; beat schedules are not registered")
            return None
        thread = threading.Thread(
            target=self._send, args=(client, jobs), name="chronos-celery-register", daemon=True
        )
        thread.start()
        return thread

    def _send(self, client: ChronosClient, jobs: list[JobDefinition]) -> None:
        try:
            with client:
                result = client.register_jobs(jobs, timeout=REGISTER_TIMEOUT)
            for error in result.errors:
                logger.warning("chronos: job %s refused: %s", error.index, error.message)
        except Exception as exc:
            logger.warning("chronos: could not register beat schedules: %s", exc)

    def _on_beat_init(self, sender: Any = None, **_: Any) -> None:
        try:
            if getattr(sender, "app", None) is not self.app:
                return
            scheduler = sender.scheduler
            self._wrap(scheduler)
            self.register(entries_from_scheduler(scheduler.schedule))
        except Exception:
            logger.warning("chronos: beat_init hook failed", exc_info=True)

    def _on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        try:
            if getattr(sender, "app", None) is not self.app:
                return
            self.register(entries_from_mapping(sender.app.conf.beat_schedule))
        except Exception:
            logger.warning("chronos: worker_ready hook failed", exc_info=True)

    # -- stamping ------------------------------------------------------------------------

    def _wrap(self, scheduler: Any) -> None:
        if "apply_entry" in scheduler.__dict__:
            return
        original = scheduler.apply_entry
        hooks = self

        def apply_entry(entry: Any, producer: Any = None) -> Any:
            token = hooks._enter(entry)
            try:
                return original(entry, producer=producer)
            finally:
                if token is not None:
                    _sending.reset(token)

        scheduler.apply_entry = apply_entry
        self._wrapped.append(scheduler)

    def _enter(self, entry: Any) -> contextvars.Token[_Sending | None] | None:
        try:
            name = str(entry.name)
            job_id = self._job_ids.get(name) or self._job_id_of_task_name(str(entry.task))
            return _sending.set(_Sending(name, job_id, due_time(entry)))
        except Exception:
            logger.warning("chronos: could not note the beat entry being sent", exc_info=True)
            return None

    def _on_before_publish(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        try:
            sending = _sending.get()
            if sending is None or not isinstance(headers, dict):
                return
            headers[HEADER_JOB_ID] = sending.job_id
            headers[HEADER_BEAT_ENTRY] = sending.entry
            if sending.scheduled_for is not None:
                headers[HEADER_SCHEDULED_FOR] = sending.scheduled_for.isoformat()
        except Exception:
            logger.warning("chronos: before_task_publish hook failed", exc_info=True)
