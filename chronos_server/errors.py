"""Domain errors of the server, and the one place that maps them to HTTP.

    ChronosServerError          500 internal
    ├── BadRequest              400 bad_request (malformed JSON, wrong shape)
    ├── Unauthenticated         401 unauthenticated (missing, unknown or revoked key)
    ├── Forbidden               403 forbidden
    ├── NotFound                404 not_found
    ├── Conflict                409 conflict
    ├── PayloadTooLarge         413 payload_too_large (body or item count over the limit)
    ├── UnsupportedEncoding     415 unsupported_encoding (a Content-Encoding other than gzip)
    ├── Unprocessable           422 unprocessable
    ├── RateLimited             429 rate_limited (with Retry-After)
    └── StoreUnavailable        503 store_unavailable (with Retry-After)

Every error body is `{"error": {"code": ..., "message": ..., "field": ...}}`; a stack trace
never leaves the server.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

__all__ = [
    "BadRequest",
    "ChronosServerError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "StoreUnavailable",
    "Unauthenticated",
    "Unprocessable",
    "UnsupportedEncoding",
    "exception_handlers",
]

logger = logging.getLogger("chronos_server")


class ChronosServerError(Exception):
    """Base of every error the server answers with; subclasses fix the status and code."""

    status_code: ClassVar[int] = HTTP_500_INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal"

    def __init__(
        self, message: str, *, field: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after


class BadRequest(ChronosServerError):
    """The request cannot be read: malformed JSON, wrong top-level shape."""

    status_code = 400
    code = "bad_request"


class Unauthenticated(ChronosServerError):
    """No key, an unknown key or a revoked key."""

    status_code = 401
    code = "unauthenticated"


class Forbidden(ChronosServerError):
    """The caller is known but may not do this."""

    status_code = 403
    code = "forbidden"


class NotFound(ChronosServerError):
    """The resource does not exist for this tenant."""

    status_code = 404
    code = "not_found"


class Conflict(ChronosServerError):
    """The request contradicts the stored state."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(ChronosServerError):
    """The body (decompressed) or the number of items is over the limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedEncoding(ChronosServerError):
    """The body is compressed in a way the server does not read."""

    status_code = 415
    code = "unsupported_encoding"


class Unprocessable(ChronosServerError):
    """The request is well formed but its content is refused as a whole."""

    status_code = 422
    code = "unprocessable"


class RateLimited(ChronosServerError):
    """The key sent more requests than its limit; retry after `retry_after` seconds."""

    status_code = 429
    code = "rate_limited"


class StoreUnavailable(ChronosServerError):
    """The store cannot be reached; nothing was acknowledged, the client should retry."""

    status_code = 503
    code = "store_unavailable"


def _error_response(
    status_code: int,
    code: str,
    message: str,
    field: str | None = None,
    retry_after: float | None = None,
) -> Response[dict[str, Any]]:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return Response(
        content={"error": {"code": code, "message": message, "field": field}},
        status_code=status_code,
        headers=headers,
    )


def _domain_handler(_: Request[Any, Any, Any], exc: ChronosServerError) -> Response[Any]:
    if exc.status_code >= 500:
        logger.warning("%s: %s", exc.code, exc.message)
    return _error_response(exc.status_code, exc.code, exc.message, exc.field, exc.retry_after)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
}


def _http_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "internal" if status >= 500 else "error")
    message = exc.detail if status < 500 else "internal server error"
    return _error_response(status, code, message)


def _unexpected_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(500, "internal", "internal server error")


exception_handlers: dict[type[Exception] | int, Any] = {
    ChronosServerError: _domain_handler,
    HTTPException: _http_handler,
    Exception: _unexpected_handler,
}
"""Handed to `Litestar(exception_handlers=...)` by the app factory."""
