"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.pydantic import PydanticPlugin

from chronos_server._openapi import wire_components
from chronos_server.auth import Authenticator, KeyManager, Principal
from chronos_server.errors import exception_handlers
from chronos_server.ingest.controller import IngestController
from chronos_server.ingest.service import IngestService
from chronos_server.query.analytics import AnalyticsController
from chronos_server.query.controller import ExecutionsController, JobsController
from chronos_server.query.service import ReadService
from chronos_server.ratelimit import RateLimiter
from chronos_server.realtime import RealtimeHub, StreamController
from chronos_server.scheduler import SchedulerClock, TriggerScheduler, build_scheduler
from chronos_server.settings import ServerSettings
from chronos_server.storage import EventBroker, Stores, TelemetryStore, build_stores
from chronos_server.system import SystemController

__all__ = ["ServerContext", "create_app"]

logger = logging.getLogger("chronos_server")


@dataclass(slots=True)
class ServerContext:
    """Everything a request may need, built once per app."""

    settings: ServerSettings
    stores: Stores
    authenticator: Authenticator
    keys: KeyManager
    rate_limiter: RateLimiter
    ingest: IngestService

    @classmethod
    def build(cls, settings: ServerSettings, stores: Stores) -> ServerContext:
        """Wire the services over `stores`."""
        return cls(
            settings=settings,
            stores=stores,
            authenticator=Authenticator(
                stores.accounts,
                cache_seconds=settings.auth_cache_seconds,
                last_used_interval=settings.last_used_interval,
            ),
            keys=KeyManager(stores.accounts),
            rate_limiter=RateLimiter(settings.rate_limit_per_minute),
            ingest=IngestService(
                stores.telemetry,
                stores.broker,
                max_items=settings.max_batch_items,
                max_log_bytes=settings.max_log_bytes,
            ),
        )


def _context(state: State) -> ServerContext:
    context: ServerContext = state.context
    return context


async def _provide_principal(request: Request[Any, Any, Any], state: State) -> Principal:
    context = _context(state)
    principal = await context.authenticator.authenticate(request.headers)
    context.rate_limiter.check(principal.key_id or principal.user_id)
    return principal


def _provide_ingest_service(state: State) -> IngestService:
    return _context(state).ingest


def _provide_telemetry_store(state: State) -> TelemetryStore:
    return _context(state).stores.telemetry


def _provide_read_service(state: State) -> ReadService:
    service: ReadService = state.read_service
    return service


def _provide_broker(state: State) -> EventBroker:
    return _context(state).stores.broker


def _provide_stores(state: State) -> Stores:
    return _context(state).stores


def _provide_max_body_bytes(state: State) -> int:
    return _context(state).settings.max_body_bytes


GC_THRESHOLD = (10_000, 10, 10)
"""Collector thresholds while the app runs. Validating a batch of 1,000 executions allocates
tens of thousands of objects, which at Python's default (700 allocations between young
collections) costs a dozen collections per batch, ~15 % of its CPU time; the objects of a
batch are freed by reference counting when the request ends, so a larger first threshold
leaves cyclic garbage a little longer and collects rarely."""


class _TunedGC:
    """Freezes what start-up allocated (full collections then skip it) and raises the young
    collection threshold while at least one app runs in the process; the last app to stop
    restores both."""

    def __init__(self) -> None:
        self._apps = 0
        self._previous = gc.get_threshold()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        if self._apps == 0:
            self._previous = gc.get_threshold()
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLD)
        self._apps += 1
        try:
            yield
        finally:
            self._apps -= 1
            if self._apps == 0:
                gc.set_threshold(*self._previous)
                gc.unfreeze()


_tuned_gc = _TunedGC()


async def _purge_forever(context: ServerContext) -> None:
    while True:
        try:
            purged = await context.stores.telemetry.purge_expired()
            if purged:
                logger.info("retention: %d executions purged", purged)
        except Exception:
            logger.exception("retention purge failed; will retry")
        await asyncio.sleep(context.settings.purge_interval)


def create_app(
    settings: ServerSettings | None = None,
    *,
    stores: Stores | None = None,
    scheduler_clock: SchedulerClock | None = None,
) -> Litestar:
    """The Chronos Synapse server; `stores` defaults to the ones `settings` configure.

    `scheduler_clock` replaces the real clock of the trigger scheduler (tests).
    """
    settings = settings or ServerSettings()
    context = ServerContext.build(settings, stores or build_stores(settings))
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    realtime = RealtimeHub(
        context.authenticator,
        context.stores.broker,
        redis_url=redis_url,
        channel=settings.redis_key_prefix + "socketio",
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await context.stores.open()
        purge = asyncio.create_task(_purge_forever(context), name="chronos-retention")
        scheduler: TriggerScheduler | None = None
        tuned_gc = contextlib.ExitStack()
        try:
            scheduler = build_scheduler(
                settings, context.stores, realtime, context.ingest, scheduler_clock
            )
            app.state.scheduler = scheduler
            if scheduler is not None:
                await scheduler.start()
            tuned_gc.enter_context(_tuned_gc.running())
            yield
        finally:
            tuned_gc.close()
            if scheduler is not None:
                await scheduler.stop()
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await realtime.close()
            await context.stores.close()

    return Litestar(
        route_handlers=[
            SystemController,
            IngestController,
            JobsController,
            ExecutionsController,
            AnalyticsController,
            StreamController,
            realtime.route(),
        ],
        dependencies={
            "principal": Provide(_provide_principal),
            "ingest_service": Provide(_provide_ingest_service, sync_to_thread=False),
            "telemetry_store": Provide(_provide_telemetry_store, sync_to_thread=False),
            "stores": Provide(_provide_stores, sync_to_thread=False),
            "read_service": Provide(_provide_read_service, sync_to_thread=False),
            "broker": Provide(_provide_broker, sync_to_thread=False),
            "max_body_bytes": Provide(_provide_max_body_bytes, sync_to_thread=False),
        },
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        state=State(
            {
                "context": context,
                "realtime": realtime,
                "scheduler": None,
                "read_service": ReadService(context.stores.telemetry),
            }
        ),
        plugins=[PydanticPlugin(prefer_alias=True)],
        openapi_config=OpenAPIConfig(
            title="Chronos Synapse",
            version="0.1.0",
            path="/schema",
            components=wire_components(),
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=settings.max_body_bytes,
        debug=settings.debug,
    )
