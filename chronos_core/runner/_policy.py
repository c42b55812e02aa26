"""Per-job policy: what to do when runs overlap, how long a run may take, how to retry."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_MAX_QUEUED",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_BACKOFF_MAX",
    "JobPolicy",
    "Overlap",
]

DEFAULT_RETRY_BACKOFF = 1.0
DEFAULT_RETRY_BACKOFF_MAX = 300.0
DEFAULT_MAX_QUEUED = 1


class Overlap(StrEnum):
    """What happens when a job is due while its previous run is still going."""

    SKIP = "skip"
    """Do not start it; record a `skipped` execution."""
    QUEUE = "queue"
    """Start it when the running one ends (at most `max_queued` wait; beyond that: skip)."""
    ALLOW = "allow"
    """Start it right away, alongside the running one."""


@dataclass(frozen=True, slots=True)
class JobPolicy:
    """How the runner runs one job. The defaults: skip overlaps, no timeout, no retries.

    `timeout` (seconds) ends waiting for an attempt and records it as `timeout`; an async
    handler is cancelled, a sync handler's thread cannot be killed and is left to finish
    in the background. A timed-out attempt is not retried. `retries` failed attempts are
    retried after `retry_backoff * 2**(attempt-1)` seconds (capped at `retry_backoff_max`,
    with full jitter when `retry_jitter`).
    """

    overlap: Overlap = Overlap.SKIP
    timeout: float | None = None
    retries: int = 0
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_jitter: bool = True
    max_queued: int = DEFAULT_MAX_QUEUED

    def __post_init__(self) -> None:
        object.__setattr__(self, "overlap", Overlap(self.overlap))
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise ValueError("retry_backoff and retry_backoff_max must be >= 0")
        if self.max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {self.max_queued}")

    @property
    def max_attempts(self) -> int:
        """The first attempt plus the retries."""
        return self.retries + 1

    def backoff(self, failed_attempt: int) -> float:
        """Seconds to wait before the attempt after `failed_attempt` (counted from 1)."""
        ceiling = min(self.retry_backoff_max, self.retry_backoff * 2 ** max(failed_attempt - 1, 0))
        return random.uniform(0, ceiling) if self.retry_jitter else ceiling
