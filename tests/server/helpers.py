"""Helpers of the server tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from litestar import Litestar

from chronos_server.app import ServerContext
from chronos_server.auth import KeyManager


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Recent enough to be inside the retention, in a known hour.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
STARTED = BASE + timedelta(minutes=10)


def iso(value: datetime) -> str:
    """A datetime as the wire writes it."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def around_base(resolution: str = "h") -> dict[str, str]:
    """Query parameters of /api/metrics covering BASE's hour."""
    return {
        "resolution": resolution,
        "since": iso(BASE - timedelta(hours=1)),
        "until": iso(BASE + timedelta(hours=1)),
    }


def event(exec_id: str, job_id: str = "job-1", **fields: Any) -> dict[str, Any]:
    """A wire execution, successful by default."""
    body: dict[str, Any] = {
        "execId": exec_id,
        "jobId": job_id,
        "status": "success",
        "startedAt": iso(STARTED),
        "finishedAt": iso(STARTED + timedelta(milliseconds=1250)),
        "durationMs": 1250,
        "exitCode": 0,
    }
    body.update(fields)
    return body


@dataclass
class LiveServer:
    """An app served by uvicorn in this event loop."""

    app: Litestar
    base_url: str

    @property
    def context(self) -> ServerContext:
        """The app's services (to create keys, read stores)."""
        context: ServerContext = self.app.state.context
        return context

    async def new_tenant(self, email: str = "user@example.com", **key: Any) -> str:
        """A new user and a key for it; returns the key."""
        keys: KeyManager = self.context.keys
        user = await keys.accounts.create_user(email=email, name=email)
        issued = await keys.create_key(user.id, **key)
        return issued.secret

    async def user_of(self, key: str) -> str:
        """The tenant (user id) of a key."""
        record = await self.context.stores.accounts.find_api_key(key.split("_")[1])
        assert record is not None
        return record.user_id

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        """An HTTP client to the server, sending `key` if given."""
        headers = {"x-api-key": key} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


@contextlib.asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[LiveServer]:
    """Serve `app` with uvicorn on a free loopback port until the context exits."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            if task.done():
                task.result()
            raise RuntimeError("uvicorn did not start")
        yield LiveServer(app=app, base_url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def now_iso() -> str:
    """The current time as the wire writes it."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
