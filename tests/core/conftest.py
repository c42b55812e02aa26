"""Fixtures for the capture tests: in-memory sinks and a console that tests can read."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from chronos_core import _console
from chronos_core._models import ExecutionEvent


class ListSink:
    """Keeps every recorded event, in order."""

    def __init__(self) -> None:
        self.events: list[ExecutionEvent] = []
        self._lock = threading.Lock()

    def record(self, event: ExecutionEvent) -> bool:
        with self._lock:
            self.events.append(event)
        return True

    @property
    def only(self) -> ExecutionEvent:
        assert len(self.events) == 1, self.events
        return self.events[0]


class BrokenSink:
    """A sink that fails the way a buggy exporter might."""

    def __init__(self) -> None:
        self.calls = 0

    def record(self, event: ExecutionEvent) -> bool:
        self.calls += 1
        raise RuntimeError("sink is broken")


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def console(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The real streams (as pytest captures them); console capture is removed afterwards."""
    yield capsys
    _console.uninstall()
