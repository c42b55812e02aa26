"""Per-key request rate limiting (token bucket, in process)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chronos_server.errors import RateLimited

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows `per_minute` requests per key: a burst of that size, refilled evenly.

    The state lives in this process: with several server processes each enforces the limit on
    its own share of the traffic.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 0:
            raise ValueError("per_minute must be >= 0 (0 disables the limit)")
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def check(self, key: str) -> None:
        """Take one token for `key`, or raise `RateLimited` with the wait in `retry_after`."""
        if self.per_minute == 0:
            return
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.per_minute), updated=now)
        else:
            bucket.tokens = min(
                float(self.per_minute), bucket.tokens + (now - bucket.updated) * self._rate
            )
            bucket.updated = now
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self._rate
            raise RateLimited(
                f"more than {self.per_minute} requests per minute for this key; "
                f"retry in {wait:.1f} s",
                retry_after=wait,
            )
        bucket.tokens -= 1
