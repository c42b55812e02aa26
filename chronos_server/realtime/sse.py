"""Server-Sent Events at `GET /api/stream/executions`, for browsers and scripts.

Authenticated like every route (`x-api-key` header), scoped to the caller's tenant. Events:

    event: ready               once the subscription is live (nothing after it is missed)
    event: execution:ingested  id: <entry>/<index>, data: the `ExecutionIngested` JSON
    event: reset               the events after `Last-Event-ID` are no longer buffered:
                               reload what you show from the REST API
    : keepalive                a comment every `KEEPALIVE_SECONDS`

A client that reconnects with `Last-Event-ID` (browsers' `EventSource` do it by themselves)
first gets every buffered event after that id, then live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from chronos_server.auth import Principal
from chronos_server.storage import BrokerEntry, EventBroker

__all__ = ["KEEPALIVE_SECONDS", "STREAM_PATH", "StreamController", "sse_events"]

STREAM_PATH = "/api/stream/executions"
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2_000


def _resume_point(last_event_id: str | None) -> tuple[str | None, int]:
    """(entry id to resume from, index of the last item seen in it)."""
    if not last_event_id:
        return None, -1
    entry, _, index = last_event_id.rpartition("/")
    if not entry or not index.isdigit():
        return last_event_id, -1
    return entry, int(index)


async def sse_events(
    broker: EventBroker,
    tenant: str,
    last_event_id: str | None,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[ServerSentEventMessage]:
    """The messages of one SSE connection."""
    after, seen_index = _resume_point(last_event_id)
    queue: asyncio.Queue[BrokerEntry | BaseException] = asyncio.Queue(1_000)
    subscribed = asyncio.Event()

    async def pump() -> None:
        try:
            async with broker.stream(tenant, after) as entries:
                subscribed.set()
                async for entry in entries:
                    await queue.put(entry)
        except Exception as exc:  # ends the response; the client reconnects and resumes
            await queue.put(exc)

    task = asyncio.create_task(pump(), name="chronos-sse")
    try:
        waiter = asyncio.create_task(subscribed.wait())
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        yield ServerSentEventMessage(event="ready", data="{}", retry=RETRY_MS)
        while True:
            try:
                entry = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keepalive")
                continue
            if isinstance(entry, BaseException):
                return
            if entry.reset:
                yield ServerSentEventMessage(event="reset", data='{"reason":"gap"}')
                continue
            for index, item in enumerate(entry.items):
                if entry.id == after and index <= seen_index:
                    continue
                yield ServerSentEventMessage(
                    event="execution:ingested",
                    id=f"{entry.id}/{index}",
                    data=item.model_dump_json(by_alias=True),
                )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class StreamController(Controller):
    """`/api/stream`: live executions as Server-Sent Events."""

    path = "/api/stream"
    tags = ["realtime"]

    @get(
        "/executions",
        operation_id="streamExecutions",
        summary="Live `execution:ingested` events of the caller's tenant (Server-Sent Events)",
        description=(
            "Events `ready`, `execution:ingested` (id `<entry>/<index>`, data like "
            '`{"jobId":"nightly-report","execId":"nightly-report:1725192000000",'
            '"status":"success","startedAt":"2025-09-01T12:00:00.000Z",'
            '"finishedAt":"2025-09-01T12:00:01.250Z","durationMs":1250,"exitCode":0}`) '
            "and `reset`; send `Last-Event-ID` to resume."
        ),
    )
    async def stream(
        self,
        principal: NamedDependency[Principal],
        broker: NamedDependency[EventBroker],
        last_event_id: Annotated[
            str | None,
            HeaderParameter(
                name="last-event-id",
                required=False,
                description="Id of the last event received, to resume after it",
            ),
        ] = None,
    ) -> ServerSentEvent:
        """Open the stream; it lasts until the client goes away."""
        return ServerSentEvent(sse_events(broker, principal.tenant, last_event_id))
