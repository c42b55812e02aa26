"""examples/celery_app, run as its README says, against the real Redis and server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chronos_core import ExecutionStatus
from tests.integrations.celery.app import BROKER, RESULTS
from tests.support.live_server import ThreadedServer

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow


def test_example_runs_are_reported_and_beat_jobs_registered(
    queue_name: str, live_server: ThreadedServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{EXAMPLES}:{ROOT}",
        "CHRONOS_API_KEY": live_server.api_key,
        "CHRONOS_API_URL": live_server.url,
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": RESULTS,
        "CELERY_QUEUE": queue_name,
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_app.tasks",
                "worker",
                "-B",
                "--schedule",
                str(tmp_path / "beat-schedule"),
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
            ],
            cwd=EXAMPLES,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while b"ready." not in log.read_bytes():
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            sent = subprocess.run(
                [sys.executable, "-m", "celery_app.send"],
                cwd=EXAMPLES,
                env=env,
                capture_output=True,
                text=True,
                timeout=90,
                check=False,
            )
            assert sent.returncode == 0, sent.stderr
            report = live_server.wait_for_executions("celery_app.tasks.build_report", 1)
            charge = live_server.wait_for_executions("celery_app.tasks.charge_card", 1)
            sync = live_server.wait_for_executions("celery_app.tasks.sync_inventory", 3)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert worker.returncode == 0, log.read_text()[-3000:]
    assert report[0].status is ExecutionStatus.SUCCESS
    assert report[0].stdout is not None
    assert report[0].stdout.count("row ") == 5
    assert charge[0].status is ExecutionStatus.FAILED
    assert charge[0].error_type == "ConnectionError"
    assert charge[0].stdout == "charging 1999\n"
    assert sorted((e.attempt, e.status) for e in sync) == [
        (1, ExecutionStatus.RETRYING),
        (2, ExecutionStatus.RETRYING),
        (3, ExecutionStatus.SUCCESS),
    ]
    jobs = {job.id: job for job in live_server.jobs()}
    assert jobs["celery_app.tasks.heartbeat"].interval_seconds == 10.0
    assert jobs["celery_app.tasks.build_report"].schedule == "30 7 * * 1-5"
    assert jobs["celery_app.tasks.build_report"].timezone == "Europe/Paris"
