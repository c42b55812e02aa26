"""Chronos telemetry for APScheduler 3.x schedulers (Background, Blocking, AsyncIO, ...).

```python
from apscheduler.schedulers.background import BackgroundScheduler
from chronos_integrations.apscheduler import instrument

scheduler = BackgroundScheduler()
scheduler.add_job(report, "cron", hour=6, id="daily-report")
instrument(scheduler)          # before or after start(); jobs added later are seen too
scheduler.start()
```

APScheduler 4 (a different API, still a pre-release) is refused at import with a message
saying so; see docs/integrations/apscheduler.md.
"""

from __future__ import annotations

from importlib import metadata

__all__ = [
    "SchedulerInstrumentation",
    "default_job_id",
    "instrument",
    "uninstrument",
]

MINIMUM_VERSION = (3, 10)


def _require_apscheduler_3(version: str) -> None:
    """Refuse APScheduler versions this integration was not written for."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if len(parts) < 2 or parts[0] != 3 or parts < MINIMUM_VERSION:
        raise ImportError(
            f"chronos_integrations.apscheduler supports APScheduler 3.10+ (3.x), found {version}. "
            "APScheduler 4 has a different API and is not supported yet: pin 'apscheduler<4' "
            "or report runs with chronos_core.monitor()."
        )


try:
    _require_apscheduler_3(metadata.version("apscheduler"))
except metadata.PackageNotFoundError:
    raise ImportError(
        "APScheduler is not installed: pip install 'chronos-synapse[apscheduler]'"
    ) from None

from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

from chronos_core import BatchExporter, ChronosClient, EventSink  # noqa: E402
from chronos_integrations.apscheduler._instrument import (  # noqa: E402
    SchedulerInstrumentation,
    default_job_id,
    sink_settings,
)


def instrument(
    scheduler: Any,
    exporter: EventSink | None = None,
    *,
    client: ChronosClient | None = None,
    capture_console: bool | None = None,
    job_id: Callable[[Any], str | None] | None = None,
    labels: Iterable[str] = (),
    register: bool = True,
) -> SchedulerInstrumentation:
    """Report every run of `scheduler`'s jobs and register the jobs with their schedules.

    `exporter` defaults to the shared `chronos_core.get_exporter()`. Jobs are registered
    through the exporter's queue (`BatchExporter.register_jobs`), or through `client` when
    given; `register=False` skips registration.
    `capture_console` defaults to the exporter's `capture_console` setting. `job_id(job)`
    may return the Chronos id of an APScheduler job (None: the default, see
    `default_job_id`). Calling `instrument` again on the same scheduler returns the
    existing instrumentation.
    """
    existing = getattr(scheduler, "_chronos_instrumentation", None)
    if isinstance(existing, SchedulerInstrumentation) and existing.installed:
        return existing
    if not hasattr(scheduler, "add_listener") or not hasattr(scheduler, "get_jobs"):
        raise TypeError(f"expected an APScheduler 3 scheduler, got {type(scheduler).__name__}")
    sink, console_default, max_log_bytes, settings = sink_settings(exporter)
    # Registrations go through an exporter's queue and thread: the sink itself when it is
    # one, else one made for `client` (or from the sink's settings) and owned by us.
    registrar: BatchExporter | None = None
    owns_registrar = False
    if register:
        if client is not None:
            registrar, owns_registrar = BatchExporter(client), True
        elif isinstance(sink, BatchExporter):
            registrar = sink
        elif settings is not None and not settings.disabled:
            registrar, owns_registrar = BatchExporter(settings=settings), True
    return SchedulerInstrumentation(
        scheduler,
        sink,
        registrar=registrar,
        owns_registrar=owns_registrar,
        capture_console=console_default if capture_console is None else capture_console,
        max_log_bytes=max_log_bytes,
        job_id=job_id,
        labels=list(labels),
    ).install()


def uninstrument(scheduler: Any, timeout: float = 5.0) -> None:
    """Remove what `instrument` installed on `scheduler` (no-op if it was not instrumented)."""
    existing = getattr(scheduler, "_chronos_instrumentation", None)
    if isinstance(existing, SchedulerInstrumentation):
        existing.uninstall(timeout)
