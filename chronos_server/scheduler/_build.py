"""Assembling a process's scheduler from the server settings."""

from __future__ import annotations

import logging
import uuid

from chronos_server.ingest.service import IngestService
from chronos_server.realtime import RealtimeHub
from chronos_server.scheduler._clock import SchedulerClock, SystemClock
from chronos_server.scheduler._directory import LocalDirectory, RedisDirectory, RunnerDirectory
from chronos_server.scheduler._lease import AlwaysLeader, Lease, RedisLease
from chronos_server.scheduler._service import TriggerScheduler
from chronos_server.settings import ServerSettings
from chronos_server.storage import Stores, TriggerStore

__all__ = ["build_scheduler"]

logger = logging.getLogger("chronos_server.scheduler")


def build_scheduler(
    settings: ServerSettings,
    stores: Stores,
    hub: RealtimeHub,
    ingest: IngestService,
    clock: SchedulerClock | None = None,
) -> TriggerScheduler | None:
    """The scheduler of this process, or None if disabled or the store cannot keep its state.

    With Redis configured, processes elect a leader through a lease and share a runner
    registry; embedded, the process is always the leader and its hub knows every runner.
    Call from the running event loop (the Redis client binds to it).
    """
    if not settings.scheduler_enabled:
        return None
    triggers = stores.telemetry
    if not isinstance(triggers, TriggerStore):
        logger.warning("the telemetry store keeps no trigger state; the scheduler is off")
        return None
    server_id = uuid.uuid4().hex[:12]
    lease: Lease
    directory: RunnerDirectory
    on_close = None
    if settings.redis_url is not None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
        prefix = settings.redis_key_prefix
        ttl = settings.scheduler_lease_seconds
        lease = RedisLease(client, prefix + "scheduler:leader", server_id, ttl)
        directory = RedisDirectory(client, hub, key_prefix=prefix, server_id=server_id, ttl=ttl)
        on_close = client.aclose
    else:
        lease, directory = AlwaysLeader(), LocalDirectory(hub)
    return TriggerScheduler(
        hub=hub,
        telemetry=stores.telemetry,
        triggers=triggers,
        accounts=stores.accounts,
        ingest=ingest,
        lease=lease,
        directory=directory,
        clock=clock or SystemClock(),
        server_id=server_id,
        ack_timeout=settings.scheduler_ack_timeout,
        max_attempts=settings.scheduler_max_attempts,
        refresh_interval=settings.scheduler_refresh_seconds,
        misfire_grace=settings.scheduler_misfire_grace,
        on_close=on_close,
    )
