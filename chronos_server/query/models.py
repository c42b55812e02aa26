"""Response models of the read routes (server side only; ingestion uses chronos_core's)."""

from __future__ import annotations

from datetime import datetime

from chronos_core._models import WireModel
from chronos_server.storage import MetricsBucket, Resolution

__all__ = ["MetricsBucketView"]


class MetricsBucketView(WireModel):
    """One metrics bucket; percentiles are within 3.1 % of the exact values."""

    start: datetime
    resolution: Resolution
    total: int
    counts: dict[str, int]
    duration_count: int
    duration_sum: float
    duration_min: float | None = None
    duration_max: float | None = None
    duration_avg: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    @classmethod
    def from_bucket(cls, bucket: MetricsBucket) -> MetricsBucketView:
        """The view of a stored bucket."""
        return cls(
            start=bucket.start,
            resolution=bucket.resolution,
            total=bucket.total,
            counts=bucket.counts,
            duration_count=bucket.duration_count,
            duration_sum=bucket.duration_sum,
            duration_min=bucket.duration_min,
            duration_max=bucket.duration_max,
            duration_avg=bucket.duration_avg,
            p50=bucket.percentile(0.5),
            p95=bucket.percentile(0.95),
            p99=bucket.percentile(0.99),
        )
