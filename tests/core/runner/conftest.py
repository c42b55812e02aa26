"""Fixtures for the runner tests: an exporter that keeps events, a manual clock, runners
that are always stopped, and the loopback Socket.IO trigger server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chronos_core import BatchExporter, ExecutionEvent
from chronos_core.runner import ChronosRunner, ManualClock
from tests.core.runner.trigger_server import TriggerServer


class KeepingExporter(BatchExporter):
    """A real (disabled) exporter that also keeps every event it is given, in order."""

    def __init__(self) -> None:
        super().__init__(disabled=True)
        self.events: list[ExecutionEvent] = []
        self._kept = threading.Condition()

    def record(self, event: ExecutionEvent) -> bool:
        with self._kept:
            self.events.append(event)
            self._kept.notify_all()
        return True

    def final(self, job_id: str | None = None) -> list[ExecutionEvent]:
        with self._kept:
            return [
                e
                for e in self.events
                if e.status.is_final and (job_id is None or e.job_id == job_id)
            ]

    def wait_final(
        self, count: int, job_id: str | None = None, timeout: float = 10
    ) -> list[ExecutionEvent]:
        deadline = time.monotonic() + timeout
        with self._kept:
            while len(self.final(job_id)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._kept.wait(left)
            return self.final(job_id)


@pytest.fixture
def exporter() -> KeepingExporter:
    return KeepingExporter()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2025, 1, 6, 8, 0, tzinfo=UTC))


@pytest.fixture
def make_runner(exporter: KeepingExporter) -> Iterator[Callable[..., ChronosRunner]]:
    runners: list[ChronosRunner] = []

    def make(**options: Any) -> ChronosRunner:
        options.setdefault("exporter", exporter)
        runner = ChronosRunner(**options)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.stop(timeout=2)


@pytest.fixture
def trigger_server() -> Iterator[TriggerServer]:
    server = TriggerServer().start()
    yield server
    server.stop()
