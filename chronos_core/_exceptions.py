"""The SDK's exceptions, one tree.

    ChronosError
    ├── ConfigurationError (also a ValueError): bad or missing settings, raised at construction
    └── TransportError: a request did not get a usable answer
        ├── ConnectError: the server could not be reached (retried)
        ├── RequestTimeout: no answer within the time allowed (retried)
        └── HTTPStatusError: the server answered with an error status
            ├── RetryableStatusError: 429/502/503/504 (retried, honouring Retry-After)
            └── RejectedError: any other 4xx/5xx (never retried)
                └── AuthenticationError: 401/403

Third-party errors (httpx) are translated with `raise ... from exc`.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ChronosError",
    "ConfigurationError",
    "ConnectError",
    "HTTPStatusError",
    "RejectedError",
    "RequestTimeout",
    "RetryableStatusError",
    "TransportError",
]


class ChronosError(Exception):
    """Base class of every error the SDK raises."""


class ConfigurationError(ChronosError, ValueError):
    """A setting is missing or malformed."""


class TransportError(ChronosError):
    """A request to the server did not get a usable answer."""

    retryable: bool = False
    reason: str = "transport_error"
    #: How many requests were made before giving up (retries included).
    attempts: int = 1


class ConnectError(TransportError):
    """The server could not be reached."""

    retryable = True
    reason = "connect_error"


class RequestTimeout(TransportError):
    """The server did not answer in time."""

    retryable = True
    reason = "timeout"


class HTTPStatusError(TransportError):
    """The server answered with an error status."""

    def __init__(self, status_code: int, message: str, *, retry_after: float | None = None):
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.body = message
        self.retry_after = retry_after

    @property
    def reason(self) -> str:  # type: ignore[override]
        return f"http_{self.status_code}"


class RetryableStatusError(HTTPStatusError):
    """429, 502, 503 or 504: the server asks us to come back later."""

    retryable = True


class RejectedError(HTTPStatusError):
    """The server refused the request; sending it again would not help."""


class AuthenticationError(RejectedError):
    """The API key is missing, unknown or revoked (401), or not allowed (403)."""
