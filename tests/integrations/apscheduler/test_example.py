"""examples/apscheduler_app.py, run as a user would, against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chronos_core import ExecutionStatus
from tests.support.live_server import ThreadedServer

ROOT = Path(__file__).resolve().parents[3]


def test_example_reports_runs_and_registers_schedules(live_server: ThreadedServer) -> None:
    env = {
        **os.environ,
        "CHRONOS_API_KEY": live_server.api_key,
        "CHRONOS_API_URL": live_server.url,
        "CHRONOS_FLUSH_INTERVAL": "0.2",
    }
    done = subprocess.run(
        [sys.executable, "examples/apscheduler_app.py", "--seconds", "3.5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "still alive" in done.stdout
    jobs = {job.id: job for job in live_server.jobs()}
    assert jobs["weekday-report"].schedule == "0 8 * * 1-5"
    assert jobs["weekday-report"].timezone == "Europe/London"
    assert jobs["heartbeat"].interval_seconds == 1
    assert jobs["__main__.flaky_import"].interval_seconds == 2
    assert jobs["report-tomorrow"].run_at is not None
    beats = live_server.wait_for_executions("heartbeat", 3)
    assert len(beats) >= 3
    assert all(b.status is ExecutionStatus.SUCCESS for b in beats)
    assert beats[0].stdout == "still alive\n"
    imports = live_server.executions("__main__.flaky_import")
    assert imports
    assert all(run.stdout and "importing" in run.stdout for run in imports)
