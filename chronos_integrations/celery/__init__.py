"""Chronos for Celery: every task run and every beat schedule.

    from chronos_integrations.celery import instrument
    instrument(app)

Requires the `celery` extra (`pip install chronos-synapse[celery]`), Celery 5.3 or newer.
"""

from __future__ import annotations

try:
    import celery as _celery
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "chronos_integrations.celery needs Celery: pip install 'chronos-synapse[celery]'"
    ) from exc

_MINIMUM = (5, 3)
_version = tuple(int(part) for part in _celery.__version__.split(".")[:2] if part.isdigit())
if _version < _MINIMUM:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"chronos_integrations.celery needs Celery >= 5.3, found {_celery.__version__}"
    )

from chronos_integrations.celery._integration import (  # noqa: E402
    DEFAULT_FLUSH_TIMEOUT,
    DEFAULT_MAX_ARGS_BYTES,
    DEFAULT_RUNNING_AFTER,
    CeleryIntegration,
    instrument,
    uninstrument,
)
from chronos_integrations.celery._schedules import cron_from_crontab  # noqa: E402

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_MAX_ARGS_BYTES",
    "DEFAULT_RUNNING_AFTER",
    "CeleryIntegration",
    "cron_from_crontab",
    "instrument",
    "uninstrument",
]
