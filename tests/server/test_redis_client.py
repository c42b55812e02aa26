"""The stores' Redis connections: commands packed as redis-py packs them, and served."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from chronos_server.storage._redis_client import open_client

from .conftest import REDIS_URL

CASES: list[tuple[Any, ...]] = [
    ("PING",),
    ("SET", "k", "v", "PX", 1_000, "NX"),
    ("CONFIG GET", "maxmemory"),  # literal arguments in the command name
    (b"CLIENT SETNAME", b"x"),
    ("HSET", "h", "é", "ünïcode ✓", "f", 1.5, "n", -7, "z", 0.1 + 0.2),
    ("SET", "big", "x" * 100_000),  # past redis-py's buffer cutoff
    ("SET", "view", memoryview(b"bytes as a view")),
    ("RPUSH", "l", *[f"item-{i}" * (i % 7) for i in range(2_000)]),
    ("SET", "mixed", bytearray(b"ba"), "EX", 10),
]


def _packed(connection: Any, command: tuple[Any, ...]) -> bytes:
    return b"".join(bytes(part) for part in connection.pack_command(*command))


@pytest.mark.parametrize("command", CASES, ids=lambda c: str(c[0]))
def test_the_same_bytes_as_redis_py(command: tuple[Any, ...]) -> None:
    client = open_client("redis://127.0.0.1:6379/0")
    linear = client.connection_pool.make_connection()
    assert _packed(linear, command) == _packed(Connection(), command)
    assert _packed(linear, command) != _packed(Connection(), (*command, "x"))


@pytest.mark.parametrize("value", [True, None, object()])
def test_values_redis_py_refuses_are_refused(value: object) -> None:
    linear = open_client("redis://127.0.0.1:6379/0").connection_pool.make_connection()
    with pytest.raises(DataError):
        linear.pack_command("SET", "k", value)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_the_url_chooses_the_connection_class(url: str, base: type) -> None:
    connection_class = open_client(url).connection_pool.connection_class
    assert issubclass(connection_class, base)
    assert connection_class is not base


async def test_commands_round_trip_through_redis() -> None:
    client = open_client(REDIS_URL)
    key = "chronos-test:linear-packing"
    try:
        big = "é" * 50_000
        await client.hset(key, mapping={"big": big, "n": 3, "f": 2.5, "b": b"\x00\xff"})
        assert await client.hgetall(key) == {
            b"big": big.encode(),
            b"n": b"3",
            b"f": b"2.5",
            b"b": b"\x00\xff",
        }
        async with client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "n", 4).hget(key, "n")
            assert await pipe.execute() == [7, b"7"]
    finally:
        await client.delete(key)
        await client.aclose()
