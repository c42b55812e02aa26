"""Leadership: which server process schedules right now.

With Redis, a lease: `SET key <owner> NX PX ttl` to take it, a compare-and-`PEXPIRE` (Lua) to
renew it, a compare-and-`DEL` to release it at shutdown. A holder that dies stops renewing;
the lease expires after `ttl` and another process takes it on its next attempt. Embedded (one
process), the process is always the leader.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

__all__ = ["AlwaysLeader", "Lease", "RedisLease"]

logger = logging.getLogger("chronos_server.scheduler")

_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease(Protocol):
    """Held by at most one scheduler at a time."""

    ttl: float

    async def hold(self) -> bool:
        """Take or renew the lease; True while this process holds it."""
        ...

    async def release(self) -> None:
        """Give the lease up (at shutdown) so another process takes over at once."""
        ...


class AlwaysLeader:
    """The embedded server's lease: its single process always schedules."""

    ttl = 5.0

    async def hold(self) -> bool:
        """Always held."""
        return True

    async def release(self) -> None:
        """Nothing to release."""


class RedisLease:
    """A lease in Redis shared by every server process of one key prefix."""

    def __init__(self, client: Any, key: str, owner: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"a lease needs a positive ttl, got {ttl}")
        self.client = client
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self.held = False
        self._renew = client.register_script(_RENEW_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    async def hold(self) -> bool:
        """Renew if held, else try to take it; a Redis error means not held."""
        ttl_ms = max(1, int(self.ttl * 1000))
        try:
            if self.held and await self._renew(keys=[self.key], args=[self.owner, ttl_ms]):
                return True
            taken = await self.client.set(self.key, self.owner, nx=True, px=ttl_ms)
        except Exception:
            if self.held:
                logger.warning("scheduler lease: Redis unavailable; stepping down", exc_info=True)
            self.held = False
            return False
        if bool(taken) != self.held:
            logger.info("scheduler lease %s by %s", "taken" if taken else "lost", self.owner)
        self.held = bool(taken)
        return self.held

    async def release(self) -> None:
        """Delete the lease if it is still ours."""
        if not self.held:
            return
        self.held = False
        try:
            await self._release(keys=[self.key], args=[self.owner])
        except Exception:
            logger.debug("scheduler lease: release failed", exc_info=True)
