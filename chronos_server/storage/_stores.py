"""Choosing and owning the stores a server runs with."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from chronos_server.settings import ServerSettings
from chronos_server.storage._protocols import AccountStore, EventBroker, TelemetryStore

__all__ = ["Stores", "build_stores"]


@dataclass(slots=True)
class Stores:
    """The telemetry store, account store and broker of one server, opened and closed together.

    In embedded mode `telemetry` and `accounts` are the same `SQLiteStore`.
    """

    telemetry: TelemetryStore
    accounts: AccountStore
    broker: EventBroker

    async def open(self) -> None:
        """Open every store (the shared one once); close what opened if one fails."""
        opened: list[TelemetryStore | AccountStore] = []
        try:
            for store in self._distinct():
                await store.open()
                opened.append(store)
            opener = getattr(self.broker, "open", None)
            if opener is not None:
                await opener()
        except BaseException:
            for store in reversed(opened):
                with contextlib.suppress(Exception):
                    await store.close()
            raise

    async def close(self) -> None:
        """Close everything; idempotent."""
        closer = getattr(self.broker, "close", None)
        if closer is not None:
            await closer()
        for store in self._distinct():
            await store.close()

    def _distinct(self) -> list[TelemetryStore | AccountStore]:
        if id(self.telemetry) == id(self.accounts):
            return [self.telemetry]
        return [self.telemetry, self.accounts]


def build_stores(settings: ServerSettings) -> Stores:
    """The stores `settings` ask for: Redis and/or PostgreSQL when configured, else SQLite."""
    from chronos_server.storage.sqlite import SQLiteStore

    embedded: SQLiteStore | None = None

    def sqlite() -> SQLiteStore:
        nonlocal embedded
        if embedded is None:
            embedded = SQLiteStore(settings.database, retention_seconds=settings.retention_seconds)
        return embedded

    telemetry: TelemetryStore
    broker: EventBroker
    if settings.redis_url is not None:
        from chronos_server.storage.redis import RedisBroker, RedisTelemetryStore

        telemetry = RedisTelemetryStore(
            settings.redis_url.get_secret_value(),
            key_prefix=settings.redis_key_prefix,
            retention_seconds=settings.retention_seconds,
        )
        broker = RedisBroker(
            settings.redis_url.get_secret_value(), key_prefix=settings.redis_key_prefix
        )
    else:
        from chronos_server.storage.memory_broker import InProcessBroker

        telemetry = sqlite()
        broker = InProcessBroker()

    accounts: AccountStore
    if settings.postgres_dsn is not None:
        from chronos_server.storage.postgres import PostgresAccountStore

        accounts = PostgresAccountStore(settings.postgres_dsn.get_secret_value())
    else:
        accounts = sqlite()
    return Stores(telemetry=telemetry, accounts=accounts, broker=broker)
