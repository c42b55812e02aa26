"""The app: three tasks, two beat schedules, and the two lines that add Chronos.

The broker and the queue come from `CELERY_BROKER_URL` (default: the local Redis) and
`CELERY_QUEUE` (default: `celery`); Chronos reads `CHRONOS_API_KEY` and `CHRONOS_API_URL`.
"""

from __future__ import annotations

import os
import random
from typing import Any

from celery import Celery
from celery.schedules import crontab

from chronos_integrations.celery import instrument

app = Celery(
    "celery_app",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0"),
)
app.conf.update(
    task_default_queue=os.environ.get("CELERY_QUEUE", "celery"),
    timezone="Europe/Paris",
    result_expires=None,
    beat_schedule={
        # Every 10 seconds: registered as an interval job.
        "heartbeat": {"task": "celery_app.tasks.heartbeat", "schedule": 10.0},
        # Weekdays at 07:30 Paris time: registered as `30 7 * * 1-5`, Europe/Paris.
        "morning-report": {
            "task": "celery_app.tasks.build_report",
            "schedule": crontab(minute=30, hour=7, day_of_week="mon-fri"),
        },
    },
)

instrument(app, capture_console=True)


@app.task
def heartbeat() -> str:
    return "ok"


@app.task
def build_report(rows: int = 3) -> int:
    for row in range(rows):
        print(f"row {row}: {random.randint(0, 100)}")
    return rows


@app.task
def charge_card(cents: int) -> None:
    print(f"charging {cents}")
    raise ConnectionError("payment gateway unreachable")


@app.task(bind=True, max_retries=3)
def sync_inventory(self: Any, failures: int = 2) -> int:
    if self.request.retries < failures:
        raise self.retry(exc=TimeoutError("inventory API timed out"), countdown=0)
    return int(self.request.retries)
