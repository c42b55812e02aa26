"""The scheduler's bookkeeping in Redis (see `TriggerStore`).

Keys, for prefix `P` and tenant `T` (same hash tag as the tenant's telemetry):

    P{t:T}:trig:<triggerId>   string  "P:<owner>" while pending (PX = claim), "S:<outcome>" after
    P{t:T}:once:<jobId>       hash    a:<arming> -> armed at (ms), f:<arming> -> fired at (ms)
    P{t:T}:served             set     job ids a runner has joined (scheduled by the server)
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chronos_server.errors import StoreUnavailable
from chronos_server.storage._protocols import ClaimState, OnceArming, TriggerClaim

__all__ = ["RedisTriggers"]

T = TypeVar("T")

# One round trip: take the claim, or say who has it and for how long.
_CLAIM_LUA = """
if redis.call('SET', KEYS[1], 'P:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {1, 0}
end
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 2) == 'S:' then
    return {3, 0}
end
return {2, redis.call('PTTL', KEYS[1])}
"""
_CLAIM_STATES = {1: ClaimState.CLAIMED, 2: ClaimState.PENDING, 3: ClaimState.SETTLED}


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except RedisError as exc:
        raise StoreUnavailable(f"Redis: {exc}", retry_after=1.0) from exc


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _from_ms(value: bytes | str | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value) / 1000, tz=UTC)


class RedisTriggers:
    """`TriggerStore` methods of `RedisTelemetryStore`; it provides `client` and `_prefix`."""

    _claim_script: Any = None

    @property
    def client(self) -> aioredis.Redis:  # pragma: no cover - provided by the store
        raise NotImplementedError

    def _prefix(self, tenant: str) -> str:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def claim_trigger(
        self, tenant: str, trigger_id: str, *, owner: str, pending_seconds: float
    ) -> TriggerClaim:
        """SET NX PX, else report the holder's state."""
        client = self.client
        if self._claim_script is None or self._claim_script.registered_client is not client:
            self._claim_script = client.register_script(_CLAIM_LUA)
        key = self._prefix(tenant) + "trig:" + trigger_id
        code, ttl = await _guard(
            self._claim_script(keys=[key], args=[owner, max(1, int(pending_seconds * 1000))])
        )
        state = _CLAIM_STATES[int(code)]
        return TriggerClaim(state, max(int(ttl), 0) / 1000 if state is ClaimState.PENDING else 0)

    async def settle_trigger(
        self, tenant: str, trigger_id: str, outcome: str, *, keep_seconds: float
    ) -> None:
        """Overwrite the claim with its outcome."""
        key = self._prefix(tenant) + "trig:" + trigger_id
        await _guard(self.client.set(key, "S:" + outcome, px=max(1, int(keep_seconds * 1000))))

    async def arm_once(self, tenant: str, job_id: str, arming: str, now: datetime) -> OnceArming:
        """HSETNX the arming time, then read it back with the fired time."""
        key = self._prefix(tenant) + "once:" + job_id
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "a:" + arming, _ms(now))
            pipe.hmget(key, ["a:" + arming, "f:" + arming])
            _, (armed, fired) = await _guard(pipe.execute())
        armed_at = _from_ms(armed)
        assert armed_at is not None
        return OnceArming(armed_at=armed_at, fired_at=_from_ms(fired))

    async def mark_fired(self, tenant: str, job_id: str, arming: str, when: datetime) -> None:
        """HSETNX the fired time (the first one wins)."""
        key = self._prefix(tenant) + "once:" + job_id
        await _guard(self.client.hsetnx(key, "f:" + arming, _ms(when)))

    async def mark_server_triggered(self, tenant: str, job_id: str) -> None:
        """SADD to the tenant's served set."""
        await _guard(self.client.sadd(self._prefix(tenant) + "served", job_id))

    async def server_triggered_jobs(self, tenant: str) -> set[str]:
        """SMEMBERS of the served set."""
        members = await _guard(self.client.smembers(self._prefix(tenant) + "served"))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}
