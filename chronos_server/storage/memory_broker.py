"""In-process `execution:ingested` delivery, for the embedded server (one process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from chronos_core._models import ExecutionIngested

__all__ = ["DEFAULT_SUBSCRIBER_QUEUE", "InProcessBroker"]

logger = logging.getLogger("chronos_server.broker")

DEFAULT_SUBSCRIBER_QUEUE = 1_000


class InProcessBroker:
    """Fan-out to asyncio queues, one per subscriber, grouped by tenant.

    A slow subscriber never slows ingestion: when its queue is full the event is dropped for
    it and counted in `dropped`.
    """

    def __init__(self, queue_size: int = DEFAULT_SUBSCRIBER_QUEUE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[ExecutionIngested]]] = {}
        self.dropped = 0

    async def publish(self, tenant: str, items: Sequence[ExecutionIngested]) -> None:
        """Hand each item to every subscriber of `tenant`."""
        for queue in self._subscribers.get(tenant, ()):
            for item in items:
                try:
                    queue.put_nowait(item)
                except asyncio.QueueFull:
                    self.dropped += 1
        if self.dropped and self.dropped % 1_000 == 1:
            logger.warning("realtime subscribers too slow: %d events dropped", self.dropped)

    @asynccontextmanager
    async def subscribe(self, tenant: str) -> AsyncIterator[AsyncIterator[ExecutionIngested]]:
        """Listen to one tenant until the context exits."""
        queue: asyncio.Queue[ExecutionIngested] = asyncio.Queue(self._queue_size)
        self._subscribers.setdefault(tenant, set()).add(queue)

        async def _iterate() -> AsyncIterator[ExecutionIngested]:
            while True:
                yield await queue.get()

        try:
            yield _iterate()
        finally:
            subscribers = self._subscribers.get(tenant)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[tenant]
