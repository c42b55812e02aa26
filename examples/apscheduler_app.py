"""APScheduler jobs reported to Chronos.

Start the server (`chronos server`), then, with the key it printed:

    CHRONOS_API_KEY=<key> python examples/apscheduler_app.py --seconds 10

Every run of the three jobs below shows up as an execution (the failing one with its stack,
the code around the error and what it printed); the jobs are registered with their
schedules: a weekday cron, an interval and a one-time date.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from chronos_core import configure
from chronos_integrations.apscheduler import instrument


def heartbeat() -> str:
    print("still alive")
    return "ok"


def flaky_import() -> int:
    rows = random.randint(0, 3)
    print(f"importing {rows} rows")
    if rows == 0:
        raise RuntimeError("upstream returned no rows")
    return rows


def weekday_report() -> None:
    print("report sent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run")
    args = parser.parse_args()

    exporter = configure(capture_console=True)  # CHRONOS_API_KEY / CHRONOS_API_URL
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(heartbeat, "interval", seconds=1, id="heartbeat")
    scheduler.add_job(flaky_import, "interval", seconds=2)  # no id: named after the function
    scheduler.add_job(
        weekday_report,
        "cron",
        day_of_week="mon-fri",
        hour=8,
        id="weekday-report",
        timezone="Europe/London",
    )
    scheduler.add_job(
        weekday_report, "date", run_date=datetime.now(UTC) + timedelta(days=1), id="report-tomorrow"
    )
    chronos = instrument(scheduler, exporter)
    scheduler.start()
    try:
        time.sleep(args.seconds)
    finally:
        scheduler.shutdown(wait=True)
        chronos.uninstall(timeout=5)
        exporter.shutdown(5)
    print(f"done: {exporter.stats()}")


if __name__ == "__main__":
    main()
