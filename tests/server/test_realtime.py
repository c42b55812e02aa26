"""Socket.IO and Server-Sent Events: tenant scoping, runner rooms, reconnection with
Last-Event-ID, and two server processes sharing one Redis."""

from __future__ import annotations

import asyncio
import json
import queue
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import socketio

from chronos_server import ServerSettings, create_app
from chronos_server.realtime import RealtimeHub

from .helpers import LiveServer, serve
from .test_read_api import BATCH, run


class SocketClient:
    """A python-socketio client (the runner uses the same) collecting `execution:ingested`."""

    def __init__(self) -> None:
        self.client = socketio.Client(reconnection=False)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client.on("execution:ingested", self.events.put)

    async def connect(
        self, url: str, *, key: str | None = None, auth_key: str | None = None
    ) -> None:
        headers = {"x-api-key": key} if key else {}
        auth = {"apiKey": auth_key} if auth_key else None
        await asyncio.to_thread(
            self.client.connect, url, headers=headers, auth=auth, transports=["websocket"]
        )

    async def call(self, event: str, data: Any) -> Any:
        return await asyncio.to_thread(self.client.call, event, data, timeout=5)

    async def next_event(self, timeout: float) -> dict[str, Any]:
        return await asyncio.to_thread(self.events.get, timeout=timeout)

    async def nothing_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.events.empty(), self.events.get_nowait()

    async def close(self) -> None:
        await asyncio.to_thread(self.client.disconnect)


class SSE:
    """The events of one SSE response, parsed."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines

    async def next(self, timeout: float = 5.0) -> dict[str, str]:
        async def read() -> dict[str, str]:
            event: dict[str, str] = {}
            async for line in self.lines:
                if not line:
                    if event:
                        return event
                    continue
                name, _, value = line.partition(":")
                if name:
                    event[name] = value.removeprefix(" ")
            raise EOFError

        return await asyncio.wait_for(read(), timeout)

    async def next_execution(self, timeout: float = 5.0) -> dict[str, str]:
        while True:
            event = await self.next(timeout)
            if event.get("event") != "ready":
                return event


@asynccontextmanager
async def sse(base_url: str, key: str, last_event_id: str | None = None) -> AsyncIterator[SSE]:
    headers = {"x-api-key": key}
    if last_event_id:
        headers["last-event-id"] = last_event_id
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        http.stream("GET", "/api/stream/executions", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = SSE(response.aiter_lines())
        assert (await stream.next())["event"] == "ready"
        yield stream


async def test_socketio_scoped_to_tenant_with_job_rooms(server: LiveServer) -> None:
    alice = await server.new_tenant("alice@example.com")
    bob = await server.new_tenant("bob@example.com")
    a, b, browser = SocketClient(), SocketClient(), SocketClient()
    await a.connect(server.base_url, key=alice)
    await b.connect(server.base_url, key=bob)
    await browser.connect(server.base_url, auth_key=alice)
    try:
        assert await a.call("join-job", "etl") == {"ok": True, "jobId": "etl"}
        hub: RealtimeHub = server.app.state.realtime
        alice_id = await server.user_of(alice)
        assert hub.runners_of(alice_id, "etl") == [a.client.get_sid()]
        assert hub.runners_of(await server.user_of(bob), "etl") == []
        async with server.client(alice) as http:
            await http.post(BATCH, json={"executions": [run(1, "etl", "failed", exitCode=3)]})
        got = await a.next_event(5)
        assert got == {
            "jobId": "etl",
            "execId": "etl:1",
            "status": "failed",
            "startedAt": got["startedAt"],
            "finishedAt": None,
            "durationMs": 101.0,
            "exitCode": 3,
        }
        assert (await browser.next_event(5))["execId"] == "etl:1"
        await b.nothing_more()
        assert await a.call("leave-job", "etl") == {"ok": True, "jobId": "etl"}
        assert hub.runners_of(alice_id, "etl") == []
    finally:
        for client in (a, b, browser):
            await client.close()


async def test_socketio_refuses_bad_keys(server: LiveServer) -> None:
    for key in (None, "chr_00000000_" + "x" * 43):
        client = SocketClient()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(server.base_url, key=key)


async def test_sse_scoped_and_resumes_after_a_drop(server: LiveServer) -> None:
    alice = await server.new_tenant("alice@example.com")
    bob = await server.new_tenant("bob@example.com")
    async with server.client(alice) as http:
        async with sse(server.base_url, alice) as mine, sse(server.base_url, bob) as theirs:
            await http.post(BATCH, json={"executions": [run(i, "etl") for i in range(3)]})
            first = await mine.next_execution()
            assert first["event"] == "execution:ingested"
            assert json.loads(first["data"])["execId"] == "etl:0"
            with pytest.raises(TimeoutError):
                await theirs.next_execution(timeout=0.5)
        # Dropped after the first event; two more batches arrive while away.
        await http.post(BATCH, json={"executions": [run(10, "etl")]})
        await http.post(BATCH, json={"executions": [run(11, "etl")]})
        async with sse(server.base_url, alice, last_event_id=first["id"]) as resumed:
            ids = [json.loads((await resumed.next_execution())["data"])["execId"] for _ in range(4)]
            assert ids == ["etl:1", "etl:2", "etl:10", "etl:11"]
            await http.post(BATCH, json={"executions": [run(12, "etl")]})
            live = await resumed.next_execution()
            assert json.loads(live["data"])["execId"] == "etl:12"
        # An id the buffer no longer holds is answered with an explicit reset.
        async with sse(server.base_url, alice, last_event_id="0-1/0") as stale:
            assert (await stale.next_execution())["event"] == "reset"


async def test_two_processes_share_one_stream(
    tmp_path: Any, postgres_dsn: str, redis_prefix: str
) -> None:
    from .conftest import REDIS_URL, _reset_accounts

    await _reset_accounts(postgres_dsn)
    settings = ServerSettings(
        database=tmp_path / "unused.db",
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        postgres_dsn=postgres_dsn,
        rate_limit_per_minute=0,
    )
    async with serve(create_app(settings)) as one, serve(create_app(settings)) as two:
        key = await one.new_tenant("shared@example.com")
        other = await one.new_tenant("other@example.com")
        listener, outsider = SocketClient(), SocketClient()
        await listener.connect(two.base_url, key=key)
        await outsider.connect(two.base_url, key=other)
        try:
            async with sse(two.base_url, key) as stream:
                async with one.client(key) as http:
                    sent = time.monotonic()
                    await http.post(BATCH, json={"executions": [run(1, "etl")]})
                socket_event = await listener.next_event(1.0)
                sse_event = await stream.next_execution(timeout=1.0)
                assert time.monotonic() - sent < 1.0
                assert socket_event["execId"] == "etl:1"
                assert json.loads(sse_event["data"])["execId"] == "etl:1"
                await outsider.nothing_more()
        finally:
            await listener.close()
            await outsider.close()
