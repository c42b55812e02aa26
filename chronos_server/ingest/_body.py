"""Reading a request body: size limits, gzip, JSON."""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
from litestar import Request

from chronos_server.errors import BadRequest, PayloadTooLarge, UnsupportedEncoding

__all__ = ["read_json_body"]

_GZIP = frozenset({"gzip", "x-gzip"})
_IDENTITY = frozenset({"", "identity"})


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the decompressed body is over the limit of {limit} bytes")


async def read_json_body(request: Request[Any, Any, Any], max_bytes: int) -> Any:
    """The parsed JSON body, at most `max_bytes` once decompressed.

    The wire size is bounded by the app's `request_max_body_size`; a gzip body is inflated
    while it streams in, never beyond `max_bytes + 1` bytes, so a decompression bomb is
    refused after reading only as much as the limit.
    """
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in _GZIP and encoding not in _IDENTITY:
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported; use gzip")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in _GZIP else None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, max_bytes + 1 - size)
            except zlib.error as exc:
                raise BadRequest(f"the body is not valid gzip: {exc}") from exc
            if inflater.unconsumed_tail:
                raise _too_large(max_bytes)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        parts.append(chunk)
    if inflater is not None:
        if not inflater.eof:
            raise BadRequest("the gzip body is truncated")
        if inflater.unused_data:
            raise BadRequest("unexpected data after the end of the gzip stream")
    body = b"".join(parts)
    if not body:
        raise BadRequest("the request body is empty; expected JSON")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
