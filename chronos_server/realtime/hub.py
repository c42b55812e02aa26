"""The Socket.IO server, mounted in the app at `/socket.io`.

A connection authenticates with the `x-api-key` header (or, for browsers, which cannot set
headers on a WebSocket, `auth={"apiKey": ...}`) and joins the room of its tenant. Runners emit
`join-job` / `leave-job` with a job id to enter `{tenant}:job:{jobId}`, so that a scheduler can
send `job:trigger` to one runner of a job (`runners_of`, then `emit(..., to=sid)`).

`execution:ingested` comes from the tenant-scoped `EventBroker`: each process subscribes to the
tenants that have sockets on it (one relay task per tenant) and emits to its local sockets only
(`ignore_queue=True`). With Redis configured the broker is Redis pub/sub, so an execution
ingested by any process reaches the sockets of every process; the Socket.IO client manager is
then `AsyncRedisManager`, so an `emit(to=sid)` made by one process reaches a socket held by
another (what a scheduler delivering `job:trigger` needs).

Room changes and trigger acknowledgements are reported to `RoomListener`s (the scheduler's
runner directory); `trigger:ack` and `trigger:done` from runners are acknowledged here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import socketio
from litestar import asgi
from litestar.handlers.asgi_handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from chronos_server.auth import API_KEY_HEADER, Authenticator
from chronos_server.errors import ChronosServerError
from chronos_server.storage import EventBroker

__all__ = ["SOCKETIO_PATH", "RealtimeHub", "RoomListener", "job_room", "tenant_room"]

logger = logging.getLogger("chronos_server.realtime")

SOCKETIO_PATH = "/socket.io"
EXECUTION_INGESTED = "execution:ingested"
TRIGGER_ACK = "trigger:ack"
TRIGGER_DONE = "trigger:done"
SUBSCRIBE_TIMEOUT = 5.0


def tenant_room(tenant: str) -> str:
    """The room of every socket of a tenant."""
    return f"{tenant}:tenant"


def job_room(tenant: str, job_id: str) -> str:
    """The room of the runners holding a job."""
    return f"{tenant}:job:{job_id}"


class RoomListener(Protocol):
    """Told when a runner enters or leaves a job's room, and when it acknowledges a trigger."""

    async def joined(self, tenant: str, job_id: str, sid: str) -> None:
        """`sid` (on this process) entered the job's room."""

    async def left(self, tenant: str, job_id: str, sid: str) -> None:
        """`sid` left the job's room (or disconnected)."""

    async def acknowledged(self, tenant: str, sid: str) -> None:
        """`sid` emitted `trigger:ack`: it speaks the acknowledging protocol."""


@dataclass(slots=True)
class _Relay:
    """Broker subscription of one tenant, shared by its sockets on this process."""

    task: asyncio.Task[None]
    ready: asyncio.Event
    sockets: set[str] = field(default_factory=set)


class _RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, closing the connections it replaces.

    On a Redis error its listener (and its publisher) connect again with a new client and
    pub/sub object and drop the old ones without closing them: their sockets are left to the
    garbage collector, one per reconnection. Here the old ones are closed.
    """

    def _redis_connect(self) -> None:
        old = [getattr(self, "pubsub", None), getattr(self, "redis", None)]
        super()._redis_connect()
        for client in old:
            if client is not None:
                task = asyncio.get_running_loop().create_task(_close(client))
                _closing.add(task)
                task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
"""Close calls in flight (a task nobody references may be collected before it ends)."""


async def _close(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:  # a connection Redis already dropped may fail to close cleanly
        logger.debug("could not close a replaced Redis connection", exc_info=True)


class RealtimeHub:
    """The `socketio.AsyncServer`, its authentication, rooms and the broker relay."""

    def __init__(
        self,
        authenticator: Authenticator,
        broker: EventBroker,
        *,
        redis_url: str | None = None,
        channel: str = "chronos:socketio",
    ) -> None:
        self.authenticator = authenticator
        self.broker = broker
        manager: socketio.AsyncManager | None = None
        if redis_url is not None:
            manager = _RedisManager(redis_url, channel=channel)
        self.server = socketio.AsyncServer(
            async_mode="asgi",
            client_manager=manager,
            cors_allowed_origins="*",
            logger=False,
            engineio_logger=False,
        )
        self.app = socketio.ASGIApp(self.server, socketio_path=SOCKETIO_PATH.strip("/"))
        self._relays: dict[str, _Relay] = {}
        # sid -> (tenant, job ids it joined), for listeners and to clean up on disconnect
        self._memberships: dict[str, tuple[str, set[str]]] = {}
        self._listeners: list[RoomListener] = []
        self.acknowledging: set[str] = set()
        """Sockets on this process that have emitted `trigger:ack`."""
        self.on_trigger_done: Callable[[str, dict[str, Any]], None] | None = None
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)
        self.server.on("join-job", self._join_job)
        self.server.on("leave-job", self._leave_job)
        self.server.on(TRIGGER_ACK, self._trigger_ack)
        self.server.on(TRIGGER_DONE, self._trigger_done)

    # -- mounting ------------------------------------------------------------------------

    def route(self) -> ASGIRouteHandler:
        """The Litestar mount of the Socket.IO app."""
        app = self.app

        @asgi(SOCKETIO_PATH, is_mount=True, copy_scope=True)
        async def socketio_mount(scope: Scope, receive: Receive, send: Send) -> None:
            # Litestar hands a mount the path below it; engine.io matches on the full path.
            scope["path"] = SOCKETIO_PATH + scope["path"]
            await app(scope, receive, send)

        return socketio_mount

    async def close(self) -> None:
        """Stop every relay (at shutdown)."""
        relays, self._relays = list(self._relays.values()), {}
        for relay in relays:
            relay.task.cancel()
        for relay in relays:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay.task
        with contextlib.suppress(Exception):
            await self.server.shutdown()
        await self._close_manager()

    async def _close_manager(self) -> None:
        # python-socketio gives its Redis manager no close(): stop its listener task and
        # release its connections ourselves, so nothing is left open at shutdown.
        manager = self.server.manager
        listener = getattr(manager, "thread", None)
        if isinstance(listener, asyncio.Task):
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        for name in ("pubsub", "redis"):
            connection = getattr(manager, name, None)
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.aclose()

    # -- rooms ---------------------------------------------------------------------------

    def runners_of(self, tenant: str, job_id: str) -> list[str]:
        """Socket ids on this process that joined the job's room."""
        room = job_room(tenant, job_id)
        return [sid for sid, _ in self.server.manager.get_participants("/", room)]

    def add_listener(self, listener: RoomListener) -> None:
        """Report room changes and acknowledgements to `listener` from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: RoomListener) -> None:
        """Stop reporting to `listener`."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def memberships(self) -> list[tuple[str, str, str]]:
        """Every (tenant, job id, sid) of the job rooms on this process."""
        return [
            (tenant, job_id, sid)
            for sid, (tenant, jobs) in list(self._memberships.items())
            for job_id in list(jobs)
        ]

    def tenant_of(self, sid: str) -> str | None:
        """The tenant of a connected socket on this process."""
        for tenant, relay in self._relays.items():
            if sid in relay.sockets:
                return tenant
        return None

    # -- handlers ------------------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        key = environ.get("HTTP_" + API_KEY_HEADER.upper().replace("-", "_"))
        if not key and isinstance(auth, dict):
            key = auth.get("apiKey") or auth.get(API_KEY_HEADER)
        try:
            principal = await self.authenticator.authenticate({API_KEY_HEADER: str(key or "")})
        except ChronosServerError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from None
        tenant = principal.tenant
        await self.server.save_session(sid, {"tenant": tenant})
        await self.server.enter_room(sid, tenant_room(tenant))
        await self._attach(tenant, sid)

    async def _disconnect(self, sid: str, *_: Any) -> None:
        tenant = self.tenant_of(sid)
        if tenant is not None:
            self._detach(tenant, sid)
        self.acknowledging.discard(sid)
        membership = self._memberships.pop(sid, None)
        if membership is not None:
            for job_id in membership[1]:
                await self._notify("left", membership[0], job_id, sid)

    async def _notify(self, what: str, *args: str) -> None:
        for listener in list(self._listeners):
            try:
                await getattr(listener, what)(*args)
            except Exception:
                logger.warning("a room listener failed on %s", what, exc_info=True)

    async def _tenant(self, sid: str) -> str:
        session = await self.server.get_session(sid)
        tenant: str = session["tenant"]
        return tenant

    async def _join_job(self, sid: str, job_id: Any) -> dict[str, Any]:
        if not isinstance(job_id, str) or not job_id:
            return {"ok": False, "error": "join-job expects a job id"}
        tenant = await self._tenant(sid)
        await self.server.enter_room(sid, job_room(tenant, job_id))
        self._memberships.setdefault(sid, (tenant, set()))[1].add(job_id)
        await self._notify("joined", tenant, job_id, sid)
        return {"ok": True, "jobId": job_id}

    async def _leave_job(self, sid: str, job_id: Any) -> dict[str, Any]:
        if not isinstance(job_id, str) or not job_id:
            return {"ok": False, "error": "leave-job expects a job id"}
        tenant = await self._tenant(sid)
        await self.server.leave_room(sid, job_room(tenant, job_id))
        membership = self._memberships.get(sid)
        if membership is not None and job_id in membership[1]:
            membership[1].discard(job_id)
            await self._notify("left", tenant, job_id, sid)
        return {"ok": True, "jobId": job_id}

    async def _trigger_ack(self, sid: str, payload: Any = None) -> bool:
        if sid not in self.acknowledging:
            self.acknowledging.add(sid)
            tenant = self.tenant_of(sid)
            if tenant is not None:
                await self._notify("acknowledged", tenant, sid)
        return True

    async def _trigger_done(self, sid: str, payload: Any = None) -> bool:
        # Acknowledged so that a stopping runner need not wait; the execution itself arrives
        # over HTTP with its triggerId.
        if self.on_trigger_done is not None and isinstance(payload, dict):
            with contextlib.suppress(Exception):
                self.on_trigger_done(sid, payload)
        return True

    # -- relay ---------------------------------------------------------------------------

    async def _attach(self, tenant: str, sid: str) -> None:
        relay = self._relays.get(tenant)
        if relay is None:
            ready = asyncio.Event()
            task = asyncio.create_task(self._relay(tenant, ready), name=f"chronos-relay-{tenant}")
            relay = self._relays[tenant] = _Relay(task=task, ready=ready)
        relay.sockets.add(sid)
        # Once connected, a socket hears everything ingested from then on.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(relay.ready.wait(), SUBSCRIBE_TIMEOUT)

    def _detach(self, tenant: str, sid: str) -> None:
        relay = self._relays.get(tenant)
        if relay is None:
            return
        relay.sockets.discard(sid)
        if not relay.sockets:
            del self._relays[tenant]
            relay.task.cancel()

    async def _relay(self, tenant: str, ready: asyncio.Event) -> None:
        room = tenant_room(tenant)
        while True:
            try:
                async with self.broker.subscribe(tenant) as items:
                    ready.set()
                    async for item in items:
                        payload = item.model_dump(mode="json", by_alias=True)
                        await self.server.emit(
                            EXECUTION_INGESTED, payload, room=room, ignore_queue=True
                        )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("realtime relay of a tenant failed; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
