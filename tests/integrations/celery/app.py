"""The Celery app the tests run: real tasks, a Redis broker, one queue per test.

`make_app()` is used in-process; a worker subprocess loads `app` from this module, configured
from `CELERY_TEST_BROKER` and `CELERY_TEST_QUEUE`, and instruments it from `CHRONOS_*`.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

BROKER = "redis://127.0.0.1:6379/11"
# Results live in a database of their own, emptied after each test: they are stored without
# an expiry because redis-py deprecates the SETEX that Celery uses for expiring results.
RESULTS = "redis://127.0.0.1:6379/12"


def make_app(queue: str, broker: str = BROKER, backend: str = RESULTS) -> Celery:
    """A Celery app whose tasks all go to `queue`."""
    app = Celery(f"chronos-test-{queue}", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=None,
        result_backend_thread_safe=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=1,
        timezone="Europe/Paris",
    )

    @app.task(shared=False, name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(shared=False, name="t.noop")
    def noop() -> None:
        return None

    @app.task(shared=False, name="t.echo")
    def echo(marker: str, lines: int = 3, pause: float = 0.0) -> str:
        for index in range(lines):
            print(f"{marker} line {index}")
            if pause:
                time.sleep(pause)
        print(f"{marker} warning", file=sys.stderr)
        return marker

    @app.task(shared=False, name="t.fail")
    def fail(message: str) -> None:
        raise ValueError(message)

    @app.task(shared=False, name="t.flaky", bind=True, max_retries=5)
    def flaky(self: Any, failures: int) -> int:
        if self.request.retries < failures:
            error = ConnectionError(f"attempt {self.request.retries + 1}")
            raise self.retry(exc=error, countdown=0)
        return int(self.request.retries)

    @app.task(shared=False, name="t.sleep")
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.task(shared=False, name="t.soft_limited", soft_time_limit=0.5)
    def soft_limited(seconds: float) -> str:
        try:
            time.sleep(seconds)
        except SoftTimeLimitExceeded:
            raise
        return "finished"

    @app.task(shared=False, name="t.hard_limited", time_limit=1)
    def hard_limited(seconds: float) -> str:
        time.sleep(seconds)
        return "finished"

    @app.task(shared=False, name="t.numbered")
    def numbered(index: int) -> int:
        if index % 10 == 0:
            raise RuntimeError(f"task {index} fails on purpose")
        return index

    @app.task(shared=False, name="t.custom", chronos_job_id="custom-job")
    def custom() -> str:
        return "custom"

    return app


def _subprocess_app() -> Celery | None:
    queue = os.environ.get("CELERY_TEST_QUEUE")
    if not queue:
        return None
    # `kill -USR2 <pid>` prints every thread's stack to the worker's log: for diagnosing hangs.
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    app = make_app(queue, os.environ.get("CELERY_TEST_BROKER", BROKER))
    from chronos_integrations.celery import instrument

    instrument(app, capture_console=True)
    return app


app = _subprocess_app()
