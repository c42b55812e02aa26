"""Time as the server scheduler sees it: `now()` and an interruptible wait, replaceable in tests.

Due times are read from the clock; leases and acknowledgement timeouts use real time (Redis
and the network do). A `ManualClock` lets a test walk through cron minutes in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["ManualClock", "SchedulerClock", "SystemClock"]


@runtime_checkable
class SchedulerClock(Protocol):
    """What the scheduler needs from time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    async def wait(self, deadline: datetime | None, cap: float, wake: asyncio.Event) -> None:
        """Return at `deadline`, after `cap` real seconds, or when `wake` is set."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)

    async def wait(self, deadline: datetime | None, cap: float, wake: asyncio.Event) -> None:
        """Sleep on `wake` for the shorter of `cap` and the time left to `deadline`."""
        left = cap
        if deadline is not None:
            left = min(cap, (deadline - self.now()).total_seconds())
        if left <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), left)


class ManualClock:
    """A clock that moves only when told to (thread-safe), for tests of the scheduler."""

    POLL = 0.005
    """How often a waiting scheduler re-reads the manual time (real seconds)."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2025, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The manual instant."""
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        """Jump to `instant` (never backwards)."""
        with self._lock:
            self._now = max(self._now, instant.astimezone(UTC))

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by `delta` (seconds or a timedelta); returns the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now

    async def wait(self, deadline: datetime | None, cap: float, wake: asyncio.Event) -> None:
        """Poll the manual time until `deadline`, for at most `cap` real seconds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + cap
        while not wake.is_set() and loop.time() < end:
            if deadline is not None and self.now() >= deadline:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.POLL)
