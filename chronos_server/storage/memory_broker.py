"""In-process `execution:ingested` delivery, for the embedded server (one process)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chronos_core._models import ExecutionIngested
from chronos_server.storage._codec import decode_ingested
from chronos_server.storage._protocols import BrokerEntry

__all__ = ["DEFAULT_REPLAY_ENTRIES", "DEFAULT_SUBSCRIBER_QUEUE", "InProcessBroker"]

logger = logging.getLogger("chronos_server.broker")

DEFAULT_SUBSCRIBER_QUEUE = 1_000
DEFAULT_REPLAY_ENTRIES = 1_000
"""Published batches kept per tenant for listeners that reconnect (`stream(after=...)`)."""


class InProcessBroker:
    """Fan-out to asyncio queues, one per subscriber, grouped by tenant, with a replay ring.

    A slow subscriber never slows ingestion: when its queue is full the event is dropped for
    it and counted in `dropped`; a `stream` listener then gets a `reset` entry instead of a
    silent gap. Entry ids are `<epoch>-<sequence>`; the epoch changes with every broker, so an
    id from before a restart is recognised as unknown and answered with a reset.
    """

    def __init__(
        self,
        queue_size: int = DEFAULT_SUBSCRIBER_QUEUE,
        replay_entries: int = DEFAULT_REPLAY_ENTRIES,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if replay_entries < 1:
            raise ValueError("replay_entries must be at least 1")
        self._queue_size = queue_size
        self._replay_entries = replay_entries
        self._subscribers: dict[str, set[asyncio.Queue[BrokerEntry]]] = {}
        self._buffers: dict[str, deque[tuple[int, BrokerEntry]]] = {}
        self._epoch = secrets.token_hex(4)
        self._sequence = 0
        self.dropped = 0

    async def publish(self, tenant: str, payload: bytes) -> None:
        """Buffer the batch and hand it to every subscriber of `tenant`."""
        items = decode_ingested(payload)
        if not items:
            return
        self._sequence += 1
        entry = BrokerEntry(id=f"{self._epoch}-{self._sequence}", items=items)
        buffer = self._buffers.get(tenant)
        if buffer is None:
            buffer = self._buffers[tenant] = deque(maxlen=self._replay_entries)
        buffer.append((self._sequence, entry))
        for queue in self._subscribers.get(tenant, ()):
            try:
                queue.put_nowait(entry)
            except asyncio.QueueFull:
                self.dropped += len(items)
                # Replace what the listener could not keep up with by an explicit gap.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(BrokerEntry(id=entry.id, reset=True))
                if self.dropped % 1_000 < len(items):
                    logger.warning("realtime subscribers too slow: %d events dropped", self.dropped)

    def _sequence_of(self, entry_id: str) -> int | None:
        epoch, _, sequence = entry_id.partition("-")
        if epoch != self._epoch or not sequence.isdigit():
            return None
        return int(sequence)

    @asynccontextmanager
    async def _queue(self, tenant: str) -> AsyncIterator[asyncio.Queue[BrokerEntry]]:
        queue: asyncio.Queue[BrokerEntry] = asyncio.Queue(self._queue_size)
        self._subscribers.setdefault(tenant, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(tenant)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[tenant]

    @asynccontextmanager
    async def subscribe(self, tenant: str) -> AsyncIterator[AsyncIterator[ExecutionIngested]]:
        """Listen to one tenant until the context exits."""
        async with self._queue(tenant) as queue:

            async def _iterate() -> AsyncIterator[ExecutionIngested]:
                while True:
                    entry = await queue.get()
                    for item in entry.items:
                        yield item

            yield _iterate()

    @asynccontextmanager
    async def stream(
        self, tenant: str, after: str | None = None
    ) -> AsyncIterator[AsyncIterator[BrokerEntry]]:
        """Buffered entries from `after` on (inclusive), then live ones."""
        async with self._queue(tenant) as queue:
            backlog: list[BrokerEntry] = []
            if after is not None:
                buffered = list(self._buffers.get(tenant, ()))
                wanted = self._sequence_of(after)
                oldest = buffered[0][0] if buffered else self._sequence + 1
                if wanted is None or wanted < oldest:
                    backlog.append(BrokerEntry(id=after, reset=True))
                else:
                    backlog.extend(entry for seq, entry in buffered if seq >= wanted)

            async def _iterate() -> AsyncIterator[BrokerEntry]:
                for entry in backlog:
                    yield entry
                while True:
                    yield await queue.get()

            yield _iterate()
