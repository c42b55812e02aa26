"""examples/rq_app, run as its README says, against the real Redis and server."""

from __future__ import annotations

import os
import subprocess
import sys

from redis import Redis

from chronos_core import ExecutionStatus
from tests.integrations.rq.conftest import REDIS_URL, ROOT, run_worker
from tests.support.live_server import ThreadedServer


def test_example_jobs_are_reported(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    examples = ROOT / "examples"
    enqueue = subprocess.run(
        [
            sys.executable,
            "-m",
            "rq_app.enqueue",
            "--url",
            REDIS_URL,
            "--queue",
            queue_name,
            "--images",
            "5",
        ],
        cwd=examples,
        env={**os.environ, "PYTHONPATH": str(examples)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    done = run_worker(live_server, queue_name, extra_env={"PYTHONPATH": f"{examples}:{ROOT}"})
    assert done.returncode == 0, done.stderr[-3000:]
    resized = live_server.wait_for_executions("rq_app.tasks.resize_image", 5)
    assert len(resized) == 5
    assert all(run.status is ExecutionStatus.SUCCESS for run in resized)
    [charge] = live_server.wait_for_executions("rq_app.tasks.charge_card", 1)
    assert charge.status is ExecutionStatus.FAILED
    assert charge.error_type == "ConnectionError"
    assert charge.stdout == "charging 1999\n"
    [export] = live_server.wait_for_executions("rq_app.tasks.slow_export", 1)
    assert export.status is ExecutionStatus.TIMEOUT
