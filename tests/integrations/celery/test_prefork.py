"""A real `celery worker` subprocess with the prefork pool, recycling a child after each task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from chronos_core import ExecutionStatus
from tests.support.live_server import ThreadedServer

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


class WorkerProcess:
    """`celery -A tests.integrations.celery.app worker` with the pool options given."""

    def __init__(self, queue: str, server: ThreadedServer, log: Path, *options: str) -> None:
        env = {
            **os.environ,
            "CELERY_TEST_QUEUE": queue,
            "CHRONOS_API_KEY": server.api_key,
            "CHRONOS_API_URL": server.url,
            "CHRONOS_FLUSH_INTERVAL": "0.2",
            "PYTHONPATH": str(ROOT),
        }
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integrations.celery.app",
                "worker",
                "-Q",
                queue,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                *options,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while b"ready." not in self.log.read_bytes():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def stop(self, timeout: float = 60) -> int:
        """Warm shutdown (SIGTERM): running tasks finish first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            self._log_file.close()


@pytest.fixture
def prefork(
    queue_name: str, live_server: ThreadedServer, tmp_path: Path
) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(
        queue_name,
        live_server,
        tmp_path / "worker.log",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--max-tasks-per-child=1",
    )
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_200_tasks_on_recycled_children_are_200_executions(
    prefork: WorkerProcess, celery_app: Celery, live_server: ThreadedServer
) -> None:
    results = [celery_app.tasks["t.numbered"].delay(i) for i in range(200)]
    for result in results:
        result.get(timeout=120, propagate=False)
    events = live_server.wait_for_executions("t.numbered", 200, timeout=60)
    assert sorted(e.exec_id for e in events) == sorted(r.id for r in results)
    assert Counter(e.status for e in events) == {
        ExecutionStatus.SUCCESS: 180,
        ExecutionStatus.FAILED: 20,
    }
    # Every child ran one task, so the runs come from many processes, none of them the parent.
    assert len({e.pid for e in events}) > 100
    assert prefork.process.pid not in {e.pid for e in events}


def test_time_limits_revocation_and_warm_shutdown(
    prefork: WorkerProcess, celery_app: Celery, live_server: ThreadedServer
) -> None:
    soft = celery_app.tasks["t.soft_limited"].delay(5)
    hard = celery_app.tasks["t.hard_limited"].delay(10)
    for result in (soft, hard):
        result.get(timeout=30, propagate=False)

    [soft_event] = live_server.wait_for_executions("t.soft_limited", 1)
    assert soft_event.exec_id == soft.id
    assert soft_event.status is ExecutionStatus.TIMEOUT
    assert soft_event.error_type == "billiard.exceptions.SoftTimeLimitExceeded"

    # The child is killed: the worker's main process reports the run, under the same execId.
    [hard_event] = live_server.wait_for_executions("t.hard_limited", 1)
    assert hard_event.exec_id == hard.id
    assert hard_event.status is ExecutionStatus.TIMEOUT
    assert hard_event.error_type is not None
    assert hard_event.error_type.endswith(".TimeLimitExceeded")
    assert hard_event.duration_ms is not None
    assert hard_event.duration_ms >= 900

    terminated = celery_app.tasks["t.sleep"].delay(30)
    _wait_until_running(live_server, "t.sleep", terminated.id)
    celery_app.control.revoke(terminated.id, terminate=True)
    [cancelled] = live_server.wait_for_executions("t.sleep", 1)
    assert cancelled.exec_id == terminated.id
    assert cancelled.status is ExecutionStatus.CANCELLED

    # SIGTERM while a task runs: the task finishes, and its execution reaches the server.
    finishing = celery_app.tasks["t.echo"].delay("last", 8, 0.3)
    _wait_until_running(live_server, "t.echo", finishing.id)
    assert prefork.stop() == 0
    [last] = live_server.wait_for_executions("t.echo", 1, timeout=10)
    assert last.exec_id == finishing.id
    assert last.status is ExecutionStatus.SUCCESS
    assert last.stdout == "".join(f"last line {i}\n" for i in range(8))


def _wait_until_running(server: ThreadedServer, job_id: str, exec_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(e.exec_id == exec_id for e in server.executions(job_id)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{exec_id} never reported running")
