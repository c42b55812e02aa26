"""Fixtures for the RQ tests: a dedicated Redis database and real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.support.live_server import ThreadedServer

REDIS_URL = "redis://127.0.0.1:6379/14"  # this test package's own database (12 is Celery's)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def redis() -> Iterator[Redis]:
    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def queue_name() -> str:
    return f"chronos-test-{uuid.uuid4().hex[:8]}"


def worker_env(server: ThreadedServer, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker subprocess reporting to `server`."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CHRONOS_API_KEY": server.api_key,
        "CHRONOS_API_URL": server.url,
        "CHRONOS_FLUSH_INTERVAL": "0.1",
        "CHRONOS_CAPTURE_CONSOLE": "true",
        **(extra_env or {}),
    }


def run_probe(
    code: str, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -c code argv...` in a fresh interpreter, so that what it loads is its own."""
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def worker_command(
    queue: str, worker_class: str = "chronos_integrations.rq.ChronosWorker", *, burst: bool
) -> list[str]:
    command = [sys.executable, "-m", "rq.cli", "worker", *(["--burst"] if burst else [])]
    command += ["--url", REDIS_URL, "-w", worker_class, "--name", f"worker-{queue}", queue]
    return command


def run_worker(
    server: ThreadedServer,
    queue: str,
    *,
    worker_class: str = "chronos_integrations.rq.ChronosWorker",
    extra_env: dict[str, str] | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """`rq worker --burst` in a subprocess: forks a work horse per job, exits when done."""
    return subprocess.run(
        worker_command(queue, worker_class, burst=True),
        cwd=ROOT,
        env=worker_env(server, extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_worker(
    server: ThreadedServer, queue: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`rq worker` (not burst) in a subprocess, its stderr piped; the caller stops it."""
    return subprocess.Popen(
        worker_command(queue, burst=False),
        cwd=ROOT,
        env=worker_env(server, extra_env),
        stderr=subprocess.PIPE,
        text=True,
    )
