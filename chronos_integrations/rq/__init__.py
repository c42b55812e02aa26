"""Chronos telemetry for RQ workers (RQ 2.x and 3.x).

Start a worker with `rq worker -w chronos_integrations.rq.ChronosWorker` (configured by the
`CHRONOS_*` environment), or add Chronos to your own worker class:

```python
from rq import Worker
from chronos_integrations.rq import ChronosWorkerMixin

class MyWorker(ChronosWorkerMixin, Worker):
    chronos_exporter = my_exporter       # optional; default: the shared exporter
```

`with_chronos(MyWorker)` builds such a class for you. See docs/integrations/rq.md.
"""

from __future__ import annotations

from importlib import metadata

__all__ = [
    "ChronosSimpleWorker",
    "ChronosWorker",
    "ChronosWorkerMixin",
    "cron_job_definitions",
    "register_cron_jobs",
    "with_chronos",
]

MINIMUM_VERSION = (2, 0)


def _require_rq(version: str) -> None:
    """Refuse RQ versions this integration was not written for."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if len(parts) < 2 or parts < MINIMUM_VERSION or parts[0] > 3:
        raise ImportError(f"chronos_integrations.rq supports RQ 2.x and 3.x, found {version}")


try:
    _require_rq(metadata.version("rq"))
except metadata.PackageNotFoundError:
    raise ImportError("RQ is not installed: pip install 'chronos-synapse[rq]'") from None

from typing import Any, TypeVar, cast  # noqa: E402

from rq.worker import SimpleWorker, Worker  # noqa: E402

from chronos_integrations.rq._cron import cron_job_definitions, register_cron_jobs  # noqa: E402
from chronos_integrations.rq._worker import ChronosWorkerMixin  # noqa: E402

W = TypeVar("W", bound=type[Any])


class ChronosWorker(ChronosWorkerMixin, Worker):
    """RQ's forking `Worker`, reporting every job to Chronos."""


class ChronosSimpleWorker(ChronosWorkerMixin, SimpleWorker):
    """RQ's `SimpleWorker` (jobs run in the worker process), reporting every job."""


def with_chronos(worker_class: W) -> W:
    """A subclass of `worker_class` with `ChronosWorkerMixin` in front.

    The class is created at runtime, so `SpawnWorker` (which pickles the worker class) needs
    a subclass written in a module instead: `class MyWorker(ChronosWorkerMixin, SpawnWorker)`.
    """
    if issubclass(worker_class, ChronosWorkerMixin):
        return worker_class
    name = f"Chronos{worker_class.__name__}"
    created: Any = type(name, (ChronosWorkerMixin, worker_class), {"__module__": __name__})
    return cast(W, created)
