"""The real Chronos server (embedded store) on loopback, in a thread of its own.

For tests whose code under test is synchronous (Celery, RQ and APScheduler workers, the
runner, `chronos exec`): the server keeps running while the test blocks, and the test reads
back what was stored through the same store the server writes to.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from chronos_core import ExecutionEvent, JobDefinition
from chronos_server import ServerSettings, create_app
from chronos_server.app import ServerContext
from tests.support.recording_server import free_port

T = TypeVar("T")


async def _cancel_leftovers() -> None:
    """Cancel the tasks still pending on the running loop, and wait for them to end."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class ThreadedServer:
    """`create_app()` served by uvicorn on a free port, with one tenant and its API key."""

    def __init__(self, database: Path, **settings: Any) -> None:
        self.settings = ServerSettings(database=database, rate_limit_per_minute=0, **settings)
        self.app = create_app(self.settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self._thread = threading.Thread(target=self._serve, name="chronos-test-server", daemon=True)
        self.api_key = ""
        self.tenant = ""

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._server.serve())

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        self.api_key, self.tenant = self.call(self._new_tenant("owner@example.com"))
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        if not self._thread.is_alive():
            # Tasks the app left behind (Socket.IO pings): cancelled, not destroyed pending.
            self._loop.run_until_complete(_cancel_leftovers())
            self._loop.close()

    @property
    def context(self) -> ServerContext:
        context: ServerContext = self.app.state.context
        return context

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    async def _new_tenant(self, email: str) -> tuple[str, str]:
        keys = self.context.keys
        user = await keys.accounts.create_user(email=email, name=email)
        issued = await keys.create_key(user.id)
        return issued.secret, user.id

    def new_tenant(self, email: str) -> tuple[str, str]:
        """Another tenant: (its API key, its user id)."""
        return self.call(self._new_tenant(email))

    def jobs(self, tenant: str | None = None) -> list[JobDefinition]:
        """Every job registered by the tenant (default: the server's first tenant)."""
        return self.call(self.context.stores.telemetry.list_jobs(tenant or self.tenant))

    def executions(
        self, job_id: str, *, tenant: str | None = None, limit: int = 10_000
    ) -> list[ExecutionEvent]:
        """Stored executions of a job, newest first."""
        store = self.context.stores.telemetry
        return self.call(store.list_executions(tenant or self.tenant, job_id, limit))

    def wait_for_executions(
        self,
        job_id: str,
        count: int,
        *,
        final: bool = True,
        timeout: float = 30.0,
        tenant: str | None = None,
    ) -> list[ExecutionEvent]:
        """Wait until `count` executions of the job are stored (final ones only, by default)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                e for e in self.executions(job_id, tenant=tenant) if not final or e.status.is_final
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
