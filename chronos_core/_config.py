"""SDK settings: the one place that reads `CHRONOS_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chronos_core._exceptions import ConfigurationError
from chronos_core._truncate import DEFAULT_MAX_LOG_BYTES

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_EXPORT_TIMEOUT",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_GZIP_MIN_BYTES",
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_LOG_BYTES",
    "DEFAULT_MAX_QUEUE_SIZE",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "ChronosSettings",
]

DEFAULT_ENDPOINT = "http://localhost:3001"
DEFAULT_MAX_QUEUE_SIZE = 10_000
DEFAULT_MAX_BATCH_SIZE = 500
# The JSON of one request's events, before gzip: well under the server's default limit of
# 5 MiB decompressed per request (`max_body_bytes`), which a batch must never exceed.
DEFAULT_MAX_BATCH_BYTES = 1_000_000
# The most a batch may hold: the server's default limits (1,000 items, 5 MiB decompressed).
MAX_BATCH_ITEMS = 1_000
MAX_BATCH_BYTES = 5 * 1024 * 1024
DEFAULT_FLUSH_INTERVAL = 2.0
DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_EXPORT_TIMEOUT = 30.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
DEFAULT_GZIP_MIN_BYTES = 1_024


class ChronosSettings(BaseSettings):
    """Everything the SDK can be configured with.

    Each field comes from the keyword argument of the same name, else from the environment
    variable `CHRONOS_<NAME>` (the endpoint also from `CHRONOS_API_URL`), else its default.
    """

    model_config = SettingsConfigDict(
        env_prefix="CHRONOS_", extra="ignore", populate_by_name=True, frozen=True
    )

    api_key: str | None = Field(default=None, repr=False)
    endpoint: str = Field(
        default=DEFAULT_ENDPOINT,
        validation_alias=AliasChoices("endpoint", "CHRONOS_API_URL", "CHRONOS_ENDPOINT"),
    )
    org_id: str | None = None
    app_id: str | None = None
    app_version: str | None = None
    max_queue_size: int = Field(default=DEFAULT_MAX_QUEUE_SIZE, ge=1)
    max_batch_size: int = Field(default=DEFAULT_MAX_BATCH_SIZE, ge=1, le=MAX_BATCH_ITEMS)
    max_batch_bytes: int = Field(default=DEFAULT_MAX_BATCH_BYTES, ge=1_024, le=MAX_BATCH_BYTES)
    flush_interval: float = Field(default=DEFAULT_FLUSH_INTERVAL, gt=0)
    request_timeout: float = Field(default=DEFAULT_REQUEST_TIMEOUT, gt=0)
    export_timeout: float = Field(default=DEFAULT_EXPORT_TIMEOUT, gt=0)
    shutdown_timeout: float = Field(default=DEFAULT_SHUTDOWN_TIMEOUT, ge=0)
    gzip_min_bytes: int = Field(default=DEFAULT_GZIP_MIN_BYTES, ge=0)
    spool_dir: Path | None = None
    max_log_bytes: int = Field(default=DEFAULT_MAX_LOG_BYTES, ge=0)
    capture_console: bool = False
    disabled: bool = False

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {value!r}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"expected an http(s) URL such as {DEFAULT_ENDPOINT}, got {value!r}")
        return value

    @classmethod
    def load(cls, **overrides: Any) -> ChronosSettings:
        """Build settings, turning validation failures into one clear `ConfigurationError`.

        Keyword arguments that are `None` fall through to the environment.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"invalid Chronos settings: {problems}") from None

    def require_api_key(self) -> str:
        """The API key, or a `ConfigurationError` that says where to set it."""
        if not self.api_key:
            raise ConfigurationError(
                "no API key: pass api_key=... or set CHRONOS_API_KEY "
                "(`chronos keys create` prints one)"
            )
        return self.api_key
