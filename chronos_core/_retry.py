"""When and how long to wait before sending a request again."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BACKOFF_MULTIPLIER",
    "RETRYABLE_STATUS_CODES",
    "RetryPolicy",
    "parse_retry_after",
]

RETRYABLE_STATUS_CODES = frozenset({429, 502, 503, 504})
DEFAULT_BACKOFF_INITIAL = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_BACKOFF_MULTIPLIER = 2.0
# A server may ask for a long pause; we honour it up to this, the deadline still applies.
MAX_RETRY_AFTER = 300.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        seconds = when.timestamp() - current
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a deadline per request.

    Only connection errors, timeouts and 429/502/503/504 are retried; the exception's
    `retryable` flag says which (see `chronos_core._exceptions`).
    """

    initial: float = DEFAULT_BACKOFF_INITIAL
    maximum: float = DEFAULT_BACKOFF_MAX
    multiplier: float = DEFAULT_BACKOFF_MULTIPLIER
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError(
                "RetryPolicy needs 0 < initial <= maximum and multiplier >= 1, "
                f"got initial={self.initial}, maximum={self.maximum}, "
                f"multiplier={self.multiplier}"
            )

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A server's `Retry-After` is a floor: we never come back sooner than asked.
        """
        ceiling = min(self.maximum, self.initial * self.multiplier ** max(attempt - 1, 0))
        delay = random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def monotonic_deadline(timeout: float | None) -> float | None:
    """The `time.monotonic()` value at which `timeout` seconds from now run out."""
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left until `deadline` (never negative), or None for no deadline."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)
