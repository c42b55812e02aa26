"""Time as the runner sees it: a clock it reads and sleeps on, replaceable in tests.

The scheduler only ever calls `now()` and `wait_until(deadline, wake)`, so a test can hand
it a `ManualClock` and move time forward by days in milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]

# The system clock re-reads the wall clock at least this often while sleeping, so that a
# clock step (NTP, a resumed laptop) delays a due run by at most this long.
MAX_SLEEP_SECONDS = 5.0


@runtime_checkable
class Clock(Protocol):
    """What the scheduler needs from time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    def wait_until(self, deadline: datetime, wake: threading.Event) -> bool:
        """Sleep until `deadline` or until `wake` is set; True if woken by `wake`."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)

    def wait_until(self, deadline: datetime, wake: threading.Event) -> bool:
        """Sleep on `wake` in slices, re-reading the wall clock between them."""
        while True:
            left = (deadline - self.now()).total_seconds()
            if left <= 0:
                return wake.is_set()
            if wake.wait(min(left, MAX_SLEEP_SECONDS)):
                return True


class ManualClock:
    """A clock that moves only when told to: for tests of schedules and policies.

    `advance()` and `set()` move time; `settle()` waits until every thread sleeping on this
    clock has seen the new time and gone back to sleep, so a test knows the scheduler has
    fired everything that was due.
    """

    # How often a sleeper polls its wake event; a wake event cannot share our condition.
    _POLL = 0.005

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2025, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._cond = threading.Condition()
        # sleeping thread -> its deadline
        self._sleepers: dict[int, datetime] = {}

    def now(self) -> datetime:
        """The manual instant."""
        with self._cond:
            return self._now

    def wait_until(self, deadline: datetime, wake: threading.Event) -> bool:
        """Block until the manual time reaches `deadline` or `wake` is set."""
        key = threading.get_ident()
        with self._cond:
            self._sleepers[key] = deadline
            self._cond.notify_all()
            try:
                while self._now < deadline and not wake.is_set():
                    self._cond.wait(self._POLL)
            finally:
                del self._sleepers[key]
                self._cond.notify_all()
        return wake.is_set()

    def set(self, instant: datetime) -> None:
        """Jump to `instant` (never backwards)."""
        with self._cond:
            instant = instant.astimezone(UTC)
            if instant < self._now:
                raise ValueError("a ManualClock does not go backwards")
            self._now = instant
            self._cond.notify_all()

    def advance(self, delta: timedelta | float) -> None:
        """Move time forward by `delta` (seconds or a timedelta)."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        self.set(self.now() + delta)

    def next_deadline(self) -> datetime | None:
        """The earliest deadline a thread is sleeping towards, or None."""
        with self._cond:
            return min(self._sleepers.values(), default=None)

    def settle(self, sleepers: int = 1, timeout: float = 10.0) -> None:
        """Wait until `sleepers` threads sleep on this clock towards a deadline still ahead."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                # A sleeper whose deadline has passed is about to wake; the others have
                # nothing to do until time moves again.
                rested = [d for d in self._sleepers.values() if d > self._now]
                if len(rested) >= sleepers:
                    return
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no thread went back to sleep within {timeout}s")
                self._cond.wait(min(left, self._POLL))

    def run_until(
        self,
        instant: datetime,
        *,
        sleepers: int = 1,
        timeout: float = 30.0,
        after_each: Callable[[], object] | None = None,
    ) -> None:
        """Step from deadline to deadline up to `instant`, so every due time fires on time.

        `after_each` is called after every step (e.g. `runner.wait_idle` so that each run
        ends before time moves on).
        """
        instant = instant.astimezone(UTC)
        while True:
            self.settle(sleepers, timeout)
            if after_each is not None:
                after_each()
            deadline = self.next_deadline()
            if deadline is None or deadline > instant:
                if instant > self.now():
                    self.set(instant)
                    self.settle(sleepers, timeout)
                return
            self.set(deadline)
