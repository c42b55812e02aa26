"""Time-bucketed execution metrics: the field layout shared by every store.

A bucket is a flat map of numeric fields, the same in SQLite rows and Redis hashes:

    c:<status>   number of final executions with that status
    dn           number of executions that reported a duration
    ds           sum of durations (ms)
    dmin, dmax   smallest and largest duration (ms)
    h:<index>    histogram of durations, log-linear (see `histogram_index`)

The histogram splits each power of two (in ms) into 16 equal sub-buckets, like HdrHistogram
with one significant hex digit. A percentile read from it is the middle of its bucket, so its
relative error is at most 1/32 ≈ 3.1 % (and it is clamped to the observed min and max).
Durations under 1 ms share bucket 0.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import accumulate, compress
from typing import Any

from chronos_core._models import ExecutionEvent

__all__ = [
    "HISTOGRAM_SUB_BUCKETS",
    "METRICS_TTL_SECONDS",
    "ROLLING_HOURS",
    "ROLLING_TTL_SECONDS",
    "TENANT_SCOPE",
    "MetricsAccumulator",
    "MetricsBucket",
    "Resolution",
    "bucket_start",
    "cover",
    "histogram_index",
    "histogram_value",
    "merge_fields",
]

HISTOGRAM_SUB_BUCKETS = 16
_MAX_EXPONENT = 42  # 2**42 ms is about 139 years
TENANT_SCOPE = ""
"""The job id under which a tenant's totals are kept."""


class Resolution(StrEnum):
    """Width of a metrics bucket."""

    MINUTE = "m"
    HOUR = "h"
    DAY = "d"

    @property
    def seconds(self) -> int:
        """Width in seconds."""
        return _WIDTH[self]


_WIDTH = {Resolution.MINUTE: 60, Resolution.HOUR: 3_600, Resolution.DAY: 86_400}

METRICS_TTL_SECONDS: Mapping[Resolution, int] = {
    Resolution.MINUTE: 2 * 86_400,
    Resolution.HOUR: 35 * 86_400,
    Resolution.DAY: 400 * 86_400,
}
"""How long buckets of each resolution are kept: minutes for two days, hours for 35, days for
400. Fixed rather than tied to execution retention, because rolled-up counts are small."""


ROLLING_HOURS = 25
"""Hour buckets a rolling summary adds up: those `cover` reads for any 24-hour window."""
ROLLING_TTL_SECONDS = 2 * 86_400
"""A rolling summary nobody reads or writes for this long expires (and is rebuilt on use)."""


def bucket_start(epoch_seconds: float, resolution: Resolution) -> int:
    """Start (epoch seconds) of the bucket holding `epoch_seconds`."""
    width = resolution.seconds
    return int(epoch_seconds // width) * width


def histogram_index(duration_ms: float) -> int:
    """Histogram bucket of a duration: 0 under 1 ms, then 16 linear steps per power of two."""
    if duration_ms < 1:
        return 0
    mantissa, exponent = math.frexp(duration_ms)  # duration = mantissa * 2**exponent
    power = exponent - 1
    if power > _MAX_EXPONENT:
        return 1 + _MAX_EXPONENT * HISTOGRAM_SUB_BUCKETS + HISTOGRAM_SUB_BUCKETS - 1
    sub = int((mantissa * 2 - 1) * HISTOGRAM_SUB_BUCKETS)  # mantissa * 2 is in [1, 2)
    return 1 + power * HISTOGRAM_SUB_BUCKETS + sub


def histogram_value(index: int) -> float:
    """The middle of a histogram bucket, in ms."""
    if index <= 0:
        return 0.5
    power, sub = divmod(index - 1, HISTOGRAM_SUB_BUCKETS)
    return float(2**power * (1 + (sub + 0.5) / HISTOGRAM_SUB_BUCKETS))


@dataclass(slots=True)
class MetricsBucket:
    """One time bucket of metrics for a job (or for a whole tenant)."""

    start: datetime
    resolution: Resolution
    counts: dict[str, int] = field(default_factory=dict)
    duration_count: int = 0
    duration_sum: float = 0.0
    duration_min: float | None = None
    duration_max: float | None = None
    histogram: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Final executions in the bucket, any status."""
        return sum(self.counts.values())

    @property
    def duration_avg(self) -> float | None:
        """Mean duration in ms, if any execution reported one."""
        return self.duration_sum / self.duration_count if self.duration_count else None

    def percentile(self, q: float) -> float | None:
        """Approximate duration percentile (`q` in 0..1), within 3.1 % of the true value."""
        return self.percentiles((q,))[0]

    def percentiles(self, qs: Sequence[float]) -> list[float | None]:
        """`percentile` of each of `qs`, from one sorted cumulative histogram."""
        if any(not 0 <= q <= 1 for q in qs):
            raise ValueError(f"quantiles must be between 0 and 1, got {list(qs)}")
        histogram = self.histogram
        indexes = sorted(histogram)
        cumulative = list(accumulate([histogram[i] for i in indexes]))
        if not cumulative or cumulative[-1] == 0:
            return [None] * len(qs)
        n = cumulative[-1]
        low, high = self.duration_min, self.duration_max
        found: list[float | None] = []
        for q in qs:
            value = histogram_value(indexes[bisect_left(cumulative, max(1, math.ceil(q * n)))])
            if low is not None and value < low:
                value = low
            if high is not None and value > high:
                value = high
            found.append(value)
        return found

    @classmethod
    def from_fields(
        cls, start: int, resolution: Resolution, fields: Mapping[str, float]
    ) -> MetricsBucket:
        """Read a bucket from its stored field map."""
        bucket = cls(start=datetime.fromtimestamp(start, tz=UTC), resolution=resolution)
        for name, value in fields.items():
            if name.startswith("c:"):
                bucket.counts[name[2:]] = int(value)
            elif name.startswith("h:"):
                bucket.histogram[int(name[2:])] = int(value)
            elif name == "dn":
                bucket.duration_count = int(value)
            elif name == "ds":
                bucket.duration_sum = float(value)
            elif name == "dmin":
                bucket.duration_min = float(value)
            elif name == "dmax":
                bucket.duration_max = float(value)
        return bucket

    @classmethod
    def from_summary(
        cls, start: int, data: Mapping[str, Any], dense: bytes | None = None
    ) -> MetricsBucket:
        """Read the compact form `_window.lua` returns: `c` (counts by status), `dn`, `ds`,
        `dmin`, `dmax` and either `h` (histogram as a flat list of index, count pairs) or
        `dense`, the histogram as big-endian unsigned 32-bit counters from index 0."""
        if dense is None:
            flat = data.get("h", ())
            histogram = dict(zip(flat[::2], flat[1::2], strict=True))
        else:
            counters = struct.unpack(f">{len(dense) // 4}I", dense)
            histogram = dict(
                zip(compress(range(len(counters)), counters), filter(None, counters), strict=True)
            )
        dmin, dmax = data.get("dmin"), data.get("dmax")
        return cls(
            start=datetime.fromtimestamp(start, tz=UTC),
            resolution=Resolution.HOUR,
            counts=dict(data["c"]),
            duration_count=int(data.get("dn", 0)),
            duration_sum=float(data.get("ds", 0.0)),
            duration_min=None if dmin is None else float(dmin),
            duration_max=None if dmax is None else float(dmax),
            histogram=histogram,
        )


def merge_fields(into: dict[str, float], fields: Mapping[str, float]) -> dict[str, float]:
    """Add the field map of one bucket into another; returns `into`.

    `dmin` and `first` keep the smallest value, `dmax` and `last` the largest; every other
    field adds up.
    """
    for name, value in fields.items():
        current = into.get(name)
        if current is None:
            into[name] = value
        elif name in _MIN_FIELDS:
            into[name] = min(current, value)
        elif name in _MAX_FIELDS:
            into[name] = max(current, value)
        else:
            into[name] = current + value
    return into


_MIN_FIELDS = frozenset({"dmin", "first"})
_MAX_FIELDS = frozenset({"dmax", "last"})


def cover(start: datetime, end: datetime) -> list[tuple[Resolution, int]]:
    """The fewest hour and day buckets that cover [start, end].

    Whole UTC days inside the range are read as day buckets, the edges as hour buckets, so a
    window is rounded out to whole hours (its first hour is included entirely).
    """
    first = bucket_start(start.timestamp(), Resolution.HOUR)
    last = bucket_start(end.timestamp(), Resolution.HOUR)
    hour, day = Resolution.HOUR.seconds, Resolution.DAY.seconds
    buckets: list[tuple[Resolution, int]] = []
    at = first
    while at <= last:
        if at % day == 0 and at + day - hour <= last:
            buckets.append((Resolution.DAY, at))
            at += day
        else:
            buckets.append((Resolution.HOUR, at))
            at += hour
    return buckets


BucketKey = tuple[str, Resolution, int]
"""(job id or TENANT_SCOPE, resolution, bucket start)"""


class MetricsAccumulator:
    """Adds up the final executions of one batch into bucket field maps, before one write."""

    def __init__(self) -> None:
        self.buckets: dict[BucketKey, dict[str, float]] = {}
        self.versions: dict[tuple[str, str], dict[str, float]] = {}

    def add(self, event: ExecutionEvent) -> None:
        """Count one final execution under its job and its tenant, at every resolution."""
        started = event.started_at.timestamp()
        status_field = f"c:{event.status.value}"
        duration = event.duration_ms
        hist_field = f"h:{histogram_index(duration)}" if duration is not None else ""
        for scope in (event.job_id, TENANT_SCOPE):
            for resolution in Resolution:
                fields = self.buckets.setdefault(
                    (scope, resolution, bucket_start(started, resolution)), {}
                )
                fields[status_field] = fields.get(status_field, 0) + 1
                if duration is None:
                    continue
                fields["dn"] = fields.get("dn", 0) + 1
                fields["ds"] = fields.get("ds", 0) + duration
                fields[hist_field] = fields.get(hist_field, 0) + 1
                fields["dmin"] = min(fields.get("dmin", duration), duration)
                fields["dmax"] = max(fields.get("dmax", duration), duration)
        if event.job_version:
            # All-time (within retention) per version, for comparing versions of a job.
            increments: dict[str, float] = {status_field: 1}
            started_ms = int(started * 1000)
            increments["first"] = increments["last"] = started_ms
            if duration is not None:
                increments.update({"dn": 1, "ds": duration, hist_field: 1})
                increments["dmin"] = increments["dmax"] = duration
            version = self.versions.setdefault((event.job_id, event.job_version), {})
            merge_fields(version, increments)

    def items(self) -> Iterable[tuple[BucketKey, dict[str, float]]]:
        """Every touched bucket with its increments (min/max to be merged, not added)."""
        return self.buckets.items()
