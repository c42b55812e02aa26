"""API keys: format, storage as a hash, 401s, revocation, last use, rate limit."""

from __future__ import annotations

import hashlib

import pytest

from chronos_server import ServerSettings, create_app
from chronos_server.auth import generate_api_key, key_prefix
from chronos_server.ratelimit import RateLimiter

from .helpers import LiveServer, event, serve

BATCH = "/api/ingest/executions/batch"


def test_keys_are_high_entropy_and_carry_their_prefix() -> None:
    keys = {generate_api_key() for _ in range(100)}
    assert len(keys) == 100
    for key, prefix in keys:
        assert key.startswith(f"chr_{prefix}_")
        assert len(key) >= 4 + 8 + 1 + 43  # 256 random bits in base64url
        assert key_prefix(key) == prefix
    assert key_prefix("chr_nothex!_whatever") is None


async def test_only_the_hash_is_stored(server: LiveServer) -> None:
    key = await server.new_tenant()
    prefix = key_prefix(key)
    assert prefix is not None
    record = await server.context.stores.accounts.find_api_key(prefix)
    assert record is not None
    assert record.key_hash == hashlib.sha256(key.encode()).digest()
    stored = repr(record)
    assert key not in stored
    assert key.split("_", 2)[2] not in stored


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "not-a-key"},
        {"x-api-key": "chr_00000000_" + "A" * 43},
    ],
    ids=["missing", "empty", "malformed", "unknown"],
)
async def test_missing_or_unknown_key_is_401(server: LiveServer, headers: dict[str, str]) -> None:
    async with server.client() as http:
        answer = await http.post(BATCH, json={"executions": [event("x")]}, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


async def test_a_key_with_the_right_prefix_and_wrong_secret_is_401(server: LiveServer) -> None:
    key = await server.new_tenant()
    forged = key[: len("chr_12345678_")] + "B" * 43
    async with server.client(forged) as http:
        answer = await http.post(BATCH, json={"executions": [event("x")]})
    assert answer.status_code == 401


async def test_revoked_key_is_401_and_stores_nothing(server: LiveServer) -> None:
    key = await server.new_tenant()
    prefix = key_prefix(key)
    assert prefix is not None
    async with server.client(key) as http:
        before = await http.post(BATCH, json={"executions": [event("before")]})
        await server.context.keys.revoke(prefix)
        server.context.authenticator.forget(prefix)
        after = await http.post(BATCH, json={"executions": [event("after")]})
    assert before.status_code == 200
    assert after.status_code == 401
    assert "revoked" in after.json()["error"]["message"]
    user = await server.user_of(key)
    assert await server.context.stores.telemetry.get_execution(user, "after") is None


async def test_last_use_is_recorded_once_per_interval(server: LiveServer) -> None:
    key = await server.new_tenant()
    prefix = key_prefix(key)
    assert prefix is not None
    accounts = server.context.stores.accounts
    assert (await accounts.find_api_key(prefix)).last_used_at is None  # type: ignore[union-attr]
    async with server.client(key) as http:
        await http.get("/api/jobs")
        first = (await accounts.find_api_key(prefix)).last_used_at  # type: ignore[union-attr]
        await http.get("/api/jobs")
        second = (await accounts.find_api_key(prefix)).last_used_at  # type: ignore[union-attr]
    assert first is not None
    assert second == first  # debounced: not one write per request


async def test_over_the_rate_limit_is_429_with_retry_after(settings: ServerSettings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 3})
    async with serve(create_app(limited)) as live:
        key = await live.new_tenant()
        other = await live.new_tenant("other@example.com")
        async with live.client(key) as http:
            answers = [
                await http.post(BATCH, json={"executions": [event(f"r{i}")]}) for i in range(4)
            ]
        async with live.client(other) as http:
            other_answer = await http.post(BATCH, json={"executions": [event("o")]})
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[3].headers["retry-after"]) >= 1
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert other_answer.status_code == 200  # the limit is per key


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    for _ in range(60):
        limiter.check("k")
    with pytest.raises(Exception, match="requests per minute") as caught:
        limiter.check("k")
    assert caught.value.retry_after == pytest.approx(1.0)  # type: ignore[attr-defined]
    now[0] += 1.0
    limiter.check("k")
