"""The standalone runner: jobs declared next to their handlers, run with full telemetry.

Local mode (the runner schedules its jobs itself; the server only receives telemetry):

    chronos server &                                   # or any Chronos server
    export CHRONOS_API_KEY=chr_... CHRONOS_API_URL=http://localhost:3001
    python examples/standalone_runner.py local         # Ctrl-C stops it gracefully

Server mode (the server decides when jobs run and sends `job:trigger` over Socket.IO):

    python examples/standalone_runner.py server

Or without the `__main__` block: `chronos run examples.standalone_runner:runner --mode server`.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from chronos_core.runner import ChronosRunner

# The API key and endpoint come from CHRONOS_API_KEY / CHRONOS_API_URL.
runner = ChronosRunner(capture_console=True)


@runner.job("example-heartbeat", name="Heartbeat", interval_seconds=2, timeout=10)
def heartbeat() -> None:
    """A sync job every two seconds; a run still going when the next is due is skipped."""
    print("still alive")


@runner.job(
    "example-hourly-report",
    name="Hourly report",
    schedule="0 * * * *",
    timezone="Europe/Berlin",
    retries=2,
    timeout=300,
)
async def hourly_report() -> None:
    """An async job on a cron schedule, in its own time zone, retried twice on failure."""
    await asyncio.sleep(0.1)
    print("report built")


@runner.job(
    "example-warm-cache", name="Warm the cache", run_at=datetime.now(UTC) + timedelta(seconds=1)
)
def warm_cache() -> None:
    """A one-time job: runs once, a second after start."""
    print("cache warmed")


if __name__ == "__main__":
    runner.mode = "server" if sys.argv[1:] == ["server"] else "local"
    runner.run_forever()
