"""The Redis connection pool of the stores, with a linear-time command packer.

redis-py packs a command by joining its output buffer again for every argument, copying up to
its 6 KB cutoff each time, through an encoder that tries each type in turn. An ingestion call
carries several arguments per event (hundreds to thousands a call), where that packing cost
the server more CPU than anything else it does for a batch. `_LinearPacking.pack_command`
writes the same bytes, each piece once, with exact-type fast paths for `bytes` and `str`.
It is mixed into the pool's own connection class, so TLS and Unix-socket URLs keep theirs.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

__all__ = ["open_client"]

_LARGE = 16 * 1024
"""Arguments at least this long are sent as they are rather than copied into the buffer."""


class _LinearPacking:
    """`pack_command` in one pass; the same wire bytes as redis-py's."""

    encoder: Any

    def pack_command(self, *args: Any) -> list[Any]:
        command = args[0]
        # As redis-py does: a command name may carry literal arguments ("CONFIG GET").
        if isinstance(command, str):
            args = tuple(command.encode().split()) + args[1:]
        elif b" " in command:
            args = tuple(command.split()) + args[1:]
        encoder = self.encoder
        encode, encoding, errors = encoder.encode, encoder.encoding, encoder.encoding_errors
        output: list[Any] = []
        pieces: list[Any] = [b"*%d\r\n" % len(args)]
        append = pieces.append
        for arg in args:
            kind = type(arg)
            if kind is str:
                arg = arg.encode(encoding, errors)
            elif kind is not bytes:
                arg = encode(arg)  # ints, floats, memoryviews; refuses other types
            size = len(arg)
            if size >= _LARGE or type(arg) is memoryview:
                append(b"$%d\r\n" % size)
                output.append(b"".join(pieces))
                output.append(arg)
                pieces = [b"\r\n"]
                append = pieces.append
            else:
                append(b"$%d\r\n" % size)
                append(arg)
                append(b"\r\n")
        output.append(b"".join(pieces))
        return output


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _linear(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    found = _PACKED.get(connection_class)
    if found is None:
        name = "Linear" + connection_class.__name__
        found = _PACKED[connection_class] = type(name, (_LinearPacking, connection_class), {})
    return found


def open_client(url: str, **kwargs: Any) -> aioredis.Redis:
    """`Redis.from_url(url, **kwargs)` whose connections pack commands in linear time."""
    client = aioredis.Redis.from_url(url, **kwargs)
    pool = client.connection_pool
    pool.connection_class = _linear(pool.connection_class)
    return client
