"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import ThreadedServer
from tests.support.recording_server import BlackHole, RecordingServer


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[ThreadedServer]:
    """The real server with the embedded store, on loopback, with one tenant's key."""
    server = ThreadedServer(tmp_path / "chronos.db").start()
    yield server
    server.stop()
