"""Server settings: the one place that reads the server's `CHRONOS_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BATCH_ITEMS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_LOG_BYTES",
    "DEFAULT_PORT",
    "DEFAULT_RATE_LIMIT_PER_MINUTE",
    "DEFAULT_RETENTION_DAYS",
    "ServerSettings",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3001
DEFAULT_DATABASE = Path("chronos.db")
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_BATCH_ITEMS = 1_000
DEFAULT_RATE_LIMIT_PER_MINUTE = 6_000
DEFAULT_RETENTION_DAYS = 30
DEFAULT_MAX_LOG_BYTES = 16_384
DEFAULT_AUTH_CACHE_SECONDS = 5.0
DEFAULT_LAST_USED_INTERVAL = 60.0
DEFAULT_PURGE_INTERVAL = 3_600.0
DEFAULT_SCHEDULER_ACK_TIMEOUT = 2.0
DEFAULT_SCHEDULER_LEASE_SECONDS = 5.0
DEFAULT_SCHEDULER_REFRESH_SECONDS = 5.0
DEFAULT_SCHEDULER_MISFIRE_GRACE = 60.0
DEFAULT_SCHEDULER_MAX_ATTEMPTS = 5


class ServerSettings(BaseSettings):
    """Everything the server can be configured with.

    Each field comes from the keyword argument of the same name, else from the environment
    variable `CHRONOS_<NAME>`, else its default. With neither `redis_url` nor `postgres_dsn`
    the server is fully embedded: everything lives in the SQLite file `database`.
    """

    model_config = SettingsConfigDict(
        env_prefix="CHRONOS_", extra="ignore", populate_by_name=True, frozen=True
    )

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65_535)
    database: Path = DEFAULT_DATABASE
    redis_url: SecretStr | None = Field(
        default=None, description="Jobs, executions, metrics and pub/sub in Redis"
    )
    redis_key_prefix: str = Field(
        default="chronos:", description="Prefix of every Redis key and channel"
    )
    postgres_dsn: SecretStr | None = Field(
        default=None, description="Users and API keys in PostgreSQL"
    )
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1_024)
    max_batch_items: int = Field(default=DEFAULT_MAX_BATCH_ITEMS, ge=1, le=DEFAULT_MAX_BATCH_ITEMS)
    rate_limit_per_minute: int = Field(
        default=DEFAULT_RATE_LIMIT_PER_MINUTE, ge=0, description="Requests per key; 0 disables"
    )
    retention_days: float = Field(default=DEFAULT_RETENTION_DAYS, gt=0)
    max_log_bytes: int = Field(
        default=DEFAULT_MAX_LOG_BYTES, ge=0, description="Stored size of stdout and stderr each"
    )
    auth_cache_seconds: float = Field(
        default=DEFAULT_AUTH_CACHE_SECONDS,
        ge=0,
        description="How long a verified key is trusted without asking the store again",
    )
    last_used_interval: float = Field(
        default=DEFAULT_LAST_USED_INTERVAL,
        ge=0,
        description="A key's last use is written at most this often",
    )
    purge_interval: float = Field(default=DEFAULT_PURGE_INTERVAL, gt=0)
    scheduler_enabled: bool = Field(
        default=True, description="Trigger server-mode runners (docs/scheduler.md)"
    )
    scheduler_ack_timeout: float = Field(
        default=DEFAULT_SCHEDULER_ACK_TIMEOUT,
        gt=0,
        description="Seconds a runner has to acknowledge a trigger before another is tried",
    )
    scheduler_lease_seconds: float = Field(
        default=DEFAULT_SCHEDULER_LEASE_SECONDS,
        gt=0,
        description="Leader lease (Redis); a dead leader is replaced after about this long",
    )
    scheduler_refresh_seconds: float = Field(
        default=DEFAULT_SCHEDULER_REFRESH_SECONDS,
        gt=0,
        description="How often the leader re-reads job definitions",
    )
    scheduler_misfire_grace: float = Field(
        default=DEFAULT_SCHEDULER_MISFIRE_GRACE,
        ge=0,
        description="A due time handled later than this is recorded as missed, not run",
    )
    scheduler_max_attempts: int = Field(
        default=DEFAULT_SCHEDULER_MAX_ATTEMPTS,
        ge=1,
        description="Runners tried for one trigger before it is recorded as missed",
    )
    debug: bool = False

    @field_validator("redis_url", "postgres_dsn", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def retention_seconds(self) -> float:
        """Age after which an execution is deleted."""
        return self.retention_days * 86_400
