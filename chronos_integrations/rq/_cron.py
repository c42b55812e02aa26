"""Schedules of RQ cron jobs (`rq cron`, `rq.cron.CronScheduler`) registered with Chronos.

`rq cron` has no hook for a custom scheduler class, but every running `CronScheduler`
saves its jobs to Redis (`CronScheduler.all(connection)`). A `ChronosWorker` therefore
reads them from there with RQ's own maintenance tasks (when it starts, then every
`maintenance_interval` seconds, 10 minutes by default), on the worker's own thread, and
registers any that changed. `register_cron_jobs()` does the same once, synchronously, for
scripts that build their own `CronScheduler`.

Not in a thread of its own: a forking worker with a second thread pays for it in every horse
(each fork's child marks the other threads stopped, touching their objects: some 20 page
copies per job, measured), and a fork while that thread holds a lock leaves the horse a lock
nobody will release.

RQ evaluates cron strings in the local time of the cron process; the local zone of this
process is registered as the job's time zone (run workers and `rq cron` with the same TZ).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chronos_integrations.rq._relay import RelayLink

if TYPE_CHECKING:
    from chronos_core import BatchExporter, ChronosClient, JobDefinition

__all__ = [
    "CronEntry",
    "CronRegistration",
    "cron_entries",
    "cron_job_definitions",
    "definitions_of",
    "local_zone_name",
    "register_cron_jobs",
]

logger = logging.getLogger("chronos_integrations.rq")

REGISTER_TIMEOUT = 10.0
STOP_TIMEOUT = 2.0


def local_zone_name() -> str | None:
    """The IANA name of this process's local time zone, if it can be found."""
    configured = os.environ.get("TZ", "").lstrip(":")
    if ("/" in configured) or configured == "UTC":
        return configured
    try:
        target = Path("/etc/localtime").resolve()
    except OSError:
        return None
    parts = target.parts
    if "zoneinfo" in parts:
        return "/".join(parts[parts.index("zoneinfo") + 1 :]) or None
    return None


# (job id, name, cron string, interval in seconds, time zone, queue name): what a job
# definition is made of, in plain values (a worker hands them to its relay process).
CronEntry = tuple[str, str, str, "int | None", "str | None", str]


def cron_entries(cron_jobs: list[Any]) -> list[CronEntry]:
    """`rq.cron.CronJob`s as plain `CronEntry` tuples; ids match the executions'
    (`func_name`, or `meta["chronos_job_id"]`), so a job's schedule and its runs meet."""
    zone = local_zone_name()
    entries: list[CronEntry] = []
    for cron_job in cron_jobs:
        try:
            meta = cron_job.job_options.get("meta") or {}
            custom = meta.get("chronos_job_id") if isinstance(meta, dict) else None
            job_id = custom if isinstance(custom, str) and custom else cron_job.func_name
            entries.append(
                (
                    str(job_id),
                    str(cron_job.name or cron_job.func_name),
                    str(cron_job.cron or ""),
                    int(cron_job.interval) if cron_job.interval else None,
                    zone if cron_job.cron else None,
                    str(cron_job.queue_name),
                )
            )
        except Exception:
            logger.warning("chronos: cannot register RQ cron job %r", cron_job, exc_info=True)
    return entries


def definitions_of(entries: list[CronEntry]) -> list[JobDefinition]:
    """Job definitions of `CronEntry` tuples (the last of each id wins); an entry the schema
    refuses is logged and left out."""
    from chronos_core import JobDefinition, RunMode, Source

    definitions: dict[str, JobDefinition] = {}
    for job_id, name, cron, interval, zone, queue_name in entries:
        try:
            definitions[job_id] = JobDefinition(
                id=job_id,
                name=name,
                schedule=cron,
                run_mode=RunMode.RECURRING,
                interval_seconds=interval,
                timezone=zone,
                description=f"rq cron job on queue {queue_name}",
                source=Source.RQ,
            )
        except Exception:
            logger.warning("chronos: cannot register RQ cron job %r", job_id, exc_info=True)
    return list(definitions.values())


def cron_job_definitions(cron_jobs: list[Any]) -> list[JobDefinition]:
    """`rq.cron.CronJob`s as job definitions (`definitions_of(cron_entries(...))`)."""
    return definitions_of(cron_entries(cron_jobs))


def _running_cron_jobs(connection: Any) -> list[Any]:
    from rq.cron import CronScheduler

    jobs: list[Any] = []
    for scheduler in CronScheduler.all(connection):
        jobs.extend(scheduler.get_jobs())
    return jobs


def register_cron_jobs(
    source: Any, *, client: ChronosClient | None = None, exporter: BatchExporter | None = None
) -> list[JobDefinition]:
    """Register the cron jobs of a `CronScheduler`, or of every one running (a Redis
    connection). Does network I/O: call it from startup code, not from a job."""
    from rq.cron import CronScheduler

    cron_jobs = (
        source.get_jobs() if isinstance(source, CronScheduler) else _running_cron_jobs(source)
    )
    definitions = cron_job_definitions(cron_jobs)
    if not definitions:
        return []
    if client is None:
        from chronos_core import ChronosClient, get_exporter

        settings = (exporter or get_exporter()).settings
        with ChronosClient(settings=settings) as owned:
            owned.register_jobs(definitions, timeout=REGISTER_TIMEOUT)
    else:
        client.register_jobs(definitions, timeout=REGISTER_TIMEOUT)
    return definitions


class CronTarget(Protocol):
    """Where a registration hands the cron jobs it read: the worker's exporter, or its relay."""

    def register_cron(self, entries: list[CronEntry]) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...


class ExporterTarget:
    """Cron jobs handed to an exporter in this process, as job definitions."""

    def __init__(self, exporter: BatchExporter) -> None:
        self.exporter = exporter

    def register_cron(self, entries: list[CronEntry]) -> None:
        definitions = definitions_of(entries)
        if definitions:
            self.exporter.register_jobs(definitions)

    def flush(self, timeout: float | None = None) -> bool:
        return self.exporter.flush(timeout)


class CronRegistration:
    """Keeps a worker's cron schedules registered: each `refresh()` (the worker calls it with
    its maintenance tasks) reads RQ's cron jobs from Redis and hands them to its target (the
    exporter, or the relay process that holds it), which sends only new or changed ones, from
    its own thread.
    """

    def __init__(self, connection: Any, exporter: CronTarget) -> None:
        from rq.cron_scheduler_registry import get_registry_key

        self.connection = connection
        self.exporter = exporter
        self._schedulers_key = get_registry_key()

    @classmethod
    def start_for(cls, worker: Any) -> CronRegistration | None:
        """The registration of a worker whose exporter has settings; None otherwise."""
        try:  # RQ 2.x before cron support: nothing to do
            import rq.cron_scheduler_registry  # noqa: F401
        except ImportError:
            return None
        setup = worker._chronos()
        sink = setup[0] if setup else None
        target: CronTarget
        if isinstance(sink, RelayLink):  # its process validates the cron strings
            target = sink
        else:
            from chronos_core import BatchExporter

            if not isinstance(sink, BatchExporter) or sink.settings.disabled:
                return None
            target = ExporterTarget(sink)
        return cls(worker.connection, target)

    def refresh(self) -> int:
        """Queue the current cron jobs for registration; how many there are.

        Asks Redis first whether any cron scheduler is registered (one `ZCARD`): RQ's cron
        module brings croniter and dateutil, and a forking worker that holds them pays for
        them in every job (some 30 more page faults in each horse and 20 in the worker,
        measured with `benchmarks/rq_faults.py`), so a worker started from code in a
        deployment without `rq cron` never loads it. (`rq worker` has it loaded already:
        RQ's command line imports it for its `rq cron` command.)"""
        if not self.connection.zcard(self._schedulers_key):
            return 0
        entries = cron_entries(_running_cron_jobs(self.connection))
        if entries:
            self.exporter.register_cron(entries)
        return len(entries)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Give queued registrations up to `timeout` seconds to go out (a burst worker may
        end right after its first refresh)."""
        self.exporter.flush(timeout)
