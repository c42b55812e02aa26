"""Which runners hold a job: the sockets in its room, on any server process.

Embedded, the hub's own rooms answer. With Redis, each process writes the sockets of its job
rooms to `P{t:T}:runners:<jobId>` (a hash sid -> server id) and keeps a heartbeat key
`P scheduler:server:<id>` alive; the leader keeps only runners whose server is alive. Each
heartbeat also re-writes the process's memberships, so the registry heals after a Redis
restart. Sockets that emitted `trigger:ack` are remembered (`P scheduler:acking:<sid>`) to tell
runners that acknowledge from original-contract clients that never do.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from chronos_server.realtime import RealtimeHub

__all__ = ["LocalDirectory", "RedisDirectory", "RunnerDirectory"]

logger = logging.getLogger("chronos_server.scheduler")

# How long a socket's "acknowledges triggers" mark outlives its last renewal.
_ACKING_TTL_SECONDS = 86_400


class RunnerDirectory(Protocol):
    """Finds the runners of a job; also a `RoomListener` of the local hub."""

    async def runners(self, tenant: str, job_id: str) -> list[str]:
        """Socket ids in the job's room, on every live server process."""
        ...

    async def acknowledges(self, sid: str) -> bool:
        """Whether the socket has ever emitted `trigger:ack` (speaks the runner protocol)."""
        ...

    async def heartbeat(self) -> None:
        """Show this process alive (called every scheduler tick)."""
        ...

    async def close(self) -> None:
        """Withdraw this process's entries."""
        ...

    async def joined(self, tenant: str, job_id: str, sid: str) -> None:
        """A socket entered a job's room on this process."""
        ...

    async def left(self, tenant: str, job_id: str, sid: str) -> None:
        """A socket left a job's room on this process."""
        ...

    async def acknowledged(self, tenant: str, sid: str) -> None:
        """A socket on this process emitted `trigger:ack`."""
        ...


class LocalDirectory:
    """The rooms of this process's hub (embedded mode: the only process)."""

    def __init__(self, hub: RealtimeHub) -> None:
        self.hub = hub

    async def runners(self, tenant: str, job_id: str) -> list[str]:
        """The hub's participants of the job's room."""
        return self.hub.runners_of(tenant, job_id)

    async def acknowledges(self, sid: str) -> bool:
        """Whether the hub saw a `trigger:ack` from it."""
        return sid in self.hub.acknowledging

    async def heartbeat(self) -> None:
        """Nothing to show: there is no other process."""

    async def close(self) -> None:
        """Nothing to withdraw."""

    async def joined(self, tenant: str, job_id: str, sid: str) -> None:
        """The hub's rooms already know."""

    async def left(self, tenant: str, job_id: str, sid: str) -> None:
        """The hub's rooms already know."""

    async def acknowledged(self, tenant: str, sid: str) -> None:
        """The hub already knows."""


class RedisDirectory:
    """Runner registry shared by the server processes of one Redis key prefix."""

    def __init__(
        self, client: Any, hub: RealtimeHub, *, key_prefix: str, server_id: str, ttl: float
    ) -> None:
        self.client = client
        self.hub = hub
        self.key_prefix = key_prefix
        self.server_id = server_id
        self.ttl = ttl

    def _room(self, tenant: str, job_id: str) -> str:
        return f"{self.key_prefix}{{t:{tenant}}}:runners:{job_id}"

    def _server(self, server_id: str) -> str:
        return f"{self.key_prefix}scheduler:server:{server_id}"

    def _acking(self, sid: str) -> str:
        return f"{self.key_prefix}scheduler:acking:{sid}"

    async def runners(self, tenant: str, job_id: str) -> list[str]:
        """Registered sockets whose server process is alive; dead ones are dropped."""
        entries = await self.client.hgetall(self._room(tenant, job_id))
        if not entries:
            return []
        owners = {_text(sid): _text(server) for sid, server in entries.items()}
        servers = sorted(set(owners.values()))
        alive = await self.client.mget([self._server(server) for server in servers])
        live = {server for server, mark in zip(servers, alive, strict=True) if mark is not None}
        dead = [sid for sid, server in owners.items() if server not in live]
        if dead:
            await self.client.hdel(self._room(tenant, job_id), *dead)
        return sorted(sid for sid, server in owners.items() if server in live)

    async def acknowledges(self, sid: str) -> bool:
        """Whether any process saw a `trigger:ack` from the socket."""
        if sid in self.hub.acknowledging:
            return True
        return bool(await self.client.exists(self._acking(sid)))

    async def heartbeat(self) -> None:
        """Renew this server's key and re-write its memberships."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self._server(self.server_id), "1", px=max(1, int(self.ttl * 1000)))
            for tenant, job_id, sid in self.hub.memberships():
                pipe.hset(self._room(tenant, job_id), sid, self.server_id)
            await pipe.execute()

    async def close(self) -> None:
        """Delete the heartbeat and the memberships of this process."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(self._server(self.server_id))
                for tenant, job_id, sid in self.hub.memberships():
                    pipe.hdel(self._room(tenant, job_id), sid)
                await pipe.execute()
        except Exception:
            logger.debug("runner directory: cleanup failed", exc_info=True)

    async def joined(self, tenant: str, job_id: str, sid: str) -> None:
        """HSET the socket into the job's registry."""
        await self.client.hset(self._room(tenant, job_id), sid, self.server_id)

    async def left(self, tenant: str, job_id: str, sid: str) -> None:
        """HDEL the socket from the job's registry."""
        await self.client.hdel(self._room(tenant, job_id), sid)

    async def acknowledged(self, tenant: str, sid: str) -> None:
        """Mark the socket as one that acknowledges."""
        await self.client.set(self._acking(sid), "1", ex=_ACKING_TTL_SECONDS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
