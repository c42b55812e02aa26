"""A real Socket.IO server on loopback in the shape of the original Chronos server.

It authenticates runners by the `x-api-key` header, keeps each `join-job` room, delivers
`job:trigger` to one runner and waits for its acknowledgement, and records everything the
runner sends: joins, leaves, `trigger:ack`, `trigger:done`, and (over plain HTTP on the same
port) registered jobs and ingested executions. `restart()` stops it and serves again on
the same port, with fresh state, as a restarted server process would.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

import socketio
import uvicorn

from chronos_core._models import format_timestamp
from tests.support.recording_server import free_port

T = TypeVar("T")
API_KEY = "chr_test_trigger_key"


class TriggerServer:
    """Socket.IO + ingestion endpoints on one loopback port, run in a thread."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.connects: list[dict[str, str]] = []
        self.refused: list[str | None] = []
        self.joins: list[tuple[str, str]] = []
        self.leaves: list[tuple[str, str]] = []
        self.acks: list[dict[str, Any]] = []
        self.done: list[dict[str, Any]] = []
        self.executions: list[dict[str, Any]] = []
        self.registered: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.sio: socketio.AsyncServer | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> TriggerServer:
        self.sio = self._make_socket_server()
        app = socketio.ASGIApp(self.sio, other_asgi_app=self._http)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws="wsproto",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._loop = asyncio.new_event_loop()
        loop, server = self._loop, self._server

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve())
            # Engine.IO's per-socket ping tasks outlive the server; end them with it.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

        self._thread = threading.Thread(target=serve, name="trigger-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the trigger server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None or self._loop is None:
            return
        if self.sio is not None:
            sio = self.sio

            async def drop_everyone() -> None:
                await sio.shutdown()
                for sid in list(sio.manager.get_participants("/", None)):
                    await sio.disconnect(sid[0])

            self.call(drop_everyone())
        self._server.should_exit = True
        self._thread.join(20)
        if not self._thread.is_alive():
            self._loop.close()
        self._server = self._thread = self._loop = None

    def restart(self, pause: float = 0.5) -> None:
        self.stop()
        time.sleep(pause)
        self.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    # -- Socket.IO -----------------------------------------------------------------------

    def _make_socket_server(self) -> socketio.AsyncServer:
        sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
        owner = self

        @sio.event
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
            key = environ.get("HTTP_X_API_KEY")
            if key != owner.api_key:
                with owner.lock:
                    owner.refused.append(key)
                return False
            headers = {
                k[5:].lower().replace("_", "-"): v
                for k, v in environ.items()
                if k.startswith("HTTP_")
            }
            with owner.lock:
                owner.connects.append({"sid": sid, **headers})
            return True

        @sio.on("join-job")
        async def join_job(sid: str, job_id: str) -> None:
            await sio.enter_room(sid, f"job:{job_id}")
            with owner.lock:
                owner.joins.append((sid, job_id))

        @sio.on("leave-job")
        async def leave_job(sid: str, job_id: str) -> None:
            with owner.lock:
                owner.leaves.append((sid, job_id))
            await sio.leave_room(sid, f"job:{job_id}")

        @sio.on("trigger:ack")
        async def trigger_ack(sid: str, data: dict[str, Any]) -> None:
            with owner.lock:
                owner.acks.append({"sid": sid, **data})

        @sio.on("trigger:done")
        async def trigger_done(sid: str, data: dict[str, Any]) -> None:
            with owner.lock:
                owner.done.append({"sid": sid, **data})

        return sio

    def runners_of(self, job_id: str) -> list[str]:
        """Sids in the job's room."""
        assert self.sio is not None
        return [sid for sid, _ in self.sio.manager.get_participants("/", f"job:{job_id}")]

    def trigger(
        self,
        job_id: str,
        trigger_id: str | None = None,
        *,
        scheduled_for: datetime | None = None,
        sid: str | None = None,
        timeout: float = 10,
    ) -> Any:
        """Deliver one trigger to one runner of the job and return its acknowledgement."""
        payload = {
            "jobId": job_id,
            "triggerId": trigger_id or uuid.uuid4().hex,
            "scheduledFor": format_timestamp(scheduled_for or datetime.now(UTC)),
        }

        async def send() -> Any:
            assert self.sio is not None
            target = sid or self.runners_of(job_id)[0]
            return await self.sio.call("job:trigger", payload, to=target, timeout=timeout)

        return self.call(send(), timeout + 1)

    # -- HTTP ingestion ------------------------------------------------------------------

    async def _http(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        status, answer = 404, {"error": "not found"}
        if headers.get("x-api-key") != self.api_key:
            status, answer = 401, {"error": "unauthorized"}
        elif scope["path"] == "/api/ingest/executions/batch":
            items = json.loads(body)["executions"]
            with self.lock:
                self.executions.extend(items)
            status, answer = 200, {"success": True, "ingested": len(items)}
        elif scope["path"] == "/api/ingest/jobs/register":
            jobs = json.loads(body)["jobs"]
            with self.lock:
                self.registered.extend(jobs)
            status, answer = 200, {"success": True}
        raw = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    # -- waiting -------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.02)
        with self.lock:
            return predicate()

    def final_executions(self, job_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.executions if e["jobId"] == job_id and e["status"] != "running"]
