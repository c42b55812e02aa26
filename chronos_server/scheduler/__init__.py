"""The server scheduler: registered jobs' due times delivered as `job:trigger` to one runner.

See docs/scheduler.md. `build_scheduler` assembles a process's scheduler from the settings;
`create_app` starts it with the app. Tests pass a `ManualClock` to `create_app`.
"""

from chronos_server.scheduler._build import build_scheduler
from chronos_server.scheduler._clock import ManualClock, SchedulerClock, SystemClock
from chronos_server.scheduler._delivery import Delivery, DeliveryOutcome
from chronos_server.scheduler._plan import (
    SCHEDULED_SOURCES,
    JobPlan,
    arming_of,
    missed_exec_id,
    trigger_id_for,
)
from chronos_server.scheduler._service import SettledTrigger, TriggerScheduler

__all__ = [
    "SCHEDULED_SOURCES",
    "Delivery",
    "DeliveryOutcome",
    "JobPlan",
    "ManualClock",
    "SchedulerClock",
    "SettledTrigger",
    "SystemClock",
    "TriggerScheduler",
    "arming_of",
    "build_scheduler",
    "missed_exec_id",
    "trigger_id_for",
]
