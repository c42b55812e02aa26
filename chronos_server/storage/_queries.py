"""The read side of `TelemetryStore`: what a query asks for and what it gets back.

Executions are listed newest first, ordered by `(startedAt, execId)` descending, and paged by
keyset: the cursor is the position of the last row returned, so runs that arrive between two
pages never shift a page (no run is shown twice or skipped). A new run appears on a later page
only if it started before the cursor, which is where it belongs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chronos_core._models import ExecutionEvent, ExecutionStatus, Source
from chronos_server.errors import BadRequest
from chronos_server.storage._metrics import MetricsBucket

__all__ = [
    "DEFAULT_SCAN_BUDGET",
    "Cursor",
    "ExecutionPage",
    "ExecutionQuery",
    "LastRun",
    "VersionStats",
    "epoch_ms",
]

DEFAULT_SCAN_BUDGET = 5_000
"""Index entries a store examines for one page at most; past it, the page comes back short
with a cursor to continue, so a rare filter never makes one request slow."""


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch (naive datetimes are UTC), as the stores index them."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A position in the newest-first order: everything strictly older comes next."""

    started_ms: int
    exec_id: str

    def encode(self) -> str:
        """The opaque string handed to clients."""
        raw = f"{self.started_ms}:{self.exec_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """Inverse of `encode`; a malformed cursor is a `BadRequest`."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            started, _, exec_id = raw.partition(":")
            if not exec_id:
                raise ValueError(value)
            return cls(int(started), exec_id)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise BadRequest("malformed cursor", field="cursor") from exc

    @classmethod
    def of(cls, event: ExecutionEvent) -> Cursor:
        """The position of an execution."""
        return cls(epoch_ms(event.started_at), event.exec_id)


@dataclass(frozen=True, slots=True)
class ExecutionQuery:
    """Filters and page of an executions listing; every filter is optional."""

    job_id: str | None = None
    statuses: Collection[ExecutionStatus] = ()
    since: datetime | None = None
    until: datetime | None = None
    job_version: str | None = None
    source: Source | None = None
    cursor: Cursor | None = None
    limit: int = 50
    scan_budget: int = DEFAULT_SCAN_BUDGET

    @property
    def since_ms(self) -> int | None:
        """Lower bound of `startedAt` (inclusive), in ms."""
        return None if self.since is None else epoch_ms(self.since)

    @property
    def until_ms(self) -> int | None:
        """Upper bound of `startedAt` (exclusive), in ms."""
        return None if self.until is None else epoch_ms(self.until)

    def matches(self, event: ExecutionEvent) -> bool:
        """Whether an execution passes every filter (stores that filter after reading)."""
        if self.job_id is not None and event.job_id != self.job_id:
            return False
        if self.statuses and event.status not in self.statuses:
            return False
        if self.job_version is not None and event.job_version != self.job_version:
            return False
        return self.source is None or event.source == self.source


@dataclass(slots=True)
class ExecutionPage:
    """One page, newest first; `next_cursor` is None on the last page."""

    items: list[ExecutionEvent] = field(default_factory=list)
    next_cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class LastRun:
    """The most recent execution of a job (by `startedAt`)."""

    job_id: str
    exec_id: str
    status: ExecutionStatus
    started_at: datetime


@dataclass(slots=True)
class VersionStats:
    """What one version of a job did: its metrics since it was first seen (within retention)."""

    version: str
    first_seen: datetime
    last_seen: datetime
    metrics: MetricsBucket
