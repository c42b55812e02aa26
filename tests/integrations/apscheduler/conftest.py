"""Fixtures for the APScheduler tests: the real server and an exporter pointed at it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from chronos_core import BatchExporter, ExecutionEvent
from tests.support.live_server import ThreadedServer


class ListSink:
    """Keeps every recorded event, for tests that look at events before they are sent."""

    def __init__(self) -> None:
        self.events: list[ExecutionEvent] = []
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)

    def record(self, event: ExecutionEvent) -> bool:
        with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()
        return True

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ExecutionEvent]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.events) >= count, timeout)
            return list(self.events)


@pytest.fixture
def exporter(live_server: ThreadedServer) -> Iterator[BatchExporter]:
    exporter = BatchExporter(
        api_key=live_server.api_key, endpoint=live_server.url, flush_interval=0.05
    )
    yield exporter
    exporter.shutdown(5)


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture(autouse=True)
def _restore_console() -> Iterator[None]:
    yield
    from chronos_core import _console

    _console.uninstall()
