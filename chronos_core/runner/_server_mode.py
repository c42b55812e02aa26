"""Server trigger mode: a Socket.IO client that runs the jobs the server tells it to.

The protocol (docs/runner.md has the full text for server implementers):

* connect with the header `x-api-key`, then emit `join-job` with each job id the runner
  holds a handler for (again after every reconnect), and `leave-job` when it stops;
* receive `job:trigger` `{jobId, triggerId, scheduledFor}`; the runner answers with the
  Socket.IO acknowledgement of that event *and* emits `trigger:ack`, both carrying
  `{triggerId, jobId, accepted, outcome, runnerId}`;
* when the run ends it emits `trigger:done` `{triggerId, jobId, execId, status}`.

A trigger id already accepted is not run again (the runner remembers the last
`seen_limit` ids) and is acknowledged as accepted with outcome `duplicate`.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from chronos_core._exceptions import ConfigurationError
from chronos_core._models import ExecutionEvent, JobTrigger
from chronos_core.runner._execution import Admission, JobSpec, RunExecutor, RunRequest

__all__ = ["DEFAULT_SEEN_LIMIT", "ServerTriggers"]

logger = logging.getLogger("chronos_core.runner")

TRIGGER_EVENT = "job:trigger"
ACK_EVENT = "trigger:ack"
DONE_EVENT = "trigger:done"
JOIN_EVENT = "join-job"
LEAVE_EVENT = "leave-job"

DEFAULT_SEEN_LIMIT = 10_000
DEFAULT_RECONNECT_DELAY = 0.5
DEFAULT_RECONNECT_DELAY_MAX = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
# Longest wait at shutdown for the server to acknowledge `leave-job`.
LEAVE_WAIT = 1.0


def _client_modules() -> tuple[Any, Any]:
    try:
        import requests
        import socketio
        import websocket  # noqa: F401 - the websocket transport needs it
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigurationError(
            "mode='server' needs the Socket.IO client: pip install 'python-socketio[client]' "
            f"({exc.name} is missing)"
        ) from exc
    return socketio, requests


class ServerTriggers:
    """Keeps one Socket.IO connection to the server and submits the triggers it receives."""

    def __init__(
        self,
        executor: RunExecutor,
        jobs: Callable[[], Mapping[str, JobSpec]],
        *,
        url: str,
        api_key: str,
        socketio_path: str = "socket.io",
        transports: Sequence[str] | None = None,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
        reconnect_delay_max: float = DEFAULT_RECONNECT_DELAY_MAX,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        seen_limit: int = DEFAULT_SEEN_LIMIT,
    ) -> None:
        self._socketio, self._requests = _client_modules()
        self._executor = executor
        self._jobs = jobs
        self._url = url
        self._headers = {"x-api-key": api_key}
        self._path = socketio_path
        # WebSocket only by default: no polling-to-websocket upgrade, whose failure path in
        # Engine.IO leaks the half-open socket; pass ["polling", "websocket"] behind proxies
        # that cannot carry WebSockets.
        self._transports = list(transports) if transports else ["websocket"]
        self._reconnect_delay = reconnect_delay
        self._reconnect_delay_max = max(reconnect_delay_max, reconnect_delay)
        self._connect_timeout = connect_timeout
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_limit = seen_limit
        self._lock = threading.Lock()
        self._done_acked = threading.Condition(self._lock)
        self._unacked_done = 0
        self._stop = threading.Event()
        self._accepting = True
        self._lost = threading.Event()
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self.connections = 0
        """How many times a connection was established (1 + reconnects)."""

    @property
    def connected(self) -> bool:
        """Whether the runner is connected to the server right now."""
        client = self._client
        return bool(client is not None and client.connected)

    def start(self) -> None:
        """Connect in the background (never blocks on the network)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._supervise, name="chronos-socket", daemon=True
            )
            self._thread.start()

    def join(self, job_id: str) -> None:
        """Tell the server this runner now handles `job_id` (if connected)."""
        self._emit(JOIN_EVENT, job_id)

    def stop_accepting(self) -> None:
        """Refuse new triggers and leave every job's room; stay connected for `trigger:done`."""
        with self._lock:
            if not self._accepting:
                return
            self._accepting = False
        # Wait (briefly) for the server to acknowledge the leaves, so that it has processed
        # them before we disconnect; a server that does not acknowledge costs LEAVE_WAIT.
        pending = [threading.Event() for _ in self._jobs()]
        for job_id, acked in zip(list(self._jobs()), pending, strict=False):
            self._emit(LEAVE_EVENT, job_id, callback=lambda *_a, e=acked: e.set())
        deadline = time.monotonic() + LEAVE_WAIT
        for acked in pending:
            if not self.connected or not acked.wait(max(deadline - time.monotonic(), 0)):
                break

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect and stop reconnecting."""
        self.stop_accepting()
        self._stop.set()
        self._lost.set()
        client = self._client
        if client is not None:
            # `trigger:done` of the last runs: wait (briefly) until the server has them.
            deadline = time.monotonic() + LEAVE_WAIT
            with self._done_acked:
                while self._unacked_done > 0 and self.connected:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._done_acked.wait(min(left, 0.05))
            self._drain(client, min(timeout, 1.0))
            try:
                client.disconnect()
            except Exception:
                logger.debug("chronos: disconnect failed", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    def _drain(client: Any, timeout: float) -> None:
        """Give queued packets (`leave-job`, `trigger:done`) a moment to reach the server."""
        deadline = time.monotonic() + timeout
        try:
            queue = client.eio.queue
            while client.connected and not queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
            if client.connected:
                time.sleep(0.05)  # from the queue to the socket
        except Exception:
            logger.debug("chronos: could not drain the socket", exc_info=True)

    # -- connection ----------------------------------------------------------------------

    def _supervise(self) -> None:
        delay = self._reconnect_delay
        failures = 0
        while not self._stop.is_set():
            lost = threading.Event()
            client = None
            try:
                client = self._new_client(lost)
                client.connect(
                    self._url,
                    headers=self._headers,
                    transports=self._transports,
                    socketio_path=self._path,
                    wait_timeout=self._connect_timeout,
                )
            except Exception as error:
                failures += 1
                log = logger.warning if failures == 1 else logger.debug
                log("chronos: cannot reach %s for triggers (%s); retrying", self._url, error)
                if client is not None:
                    self._shutdown_client(client)
                if self._stop.wait(random.uniform(delay / 2, delay)):
                    return
                delay = min(delay * 2, self._reconnect_delay_max)
                continue
            failures, delay = 0, self._reconnect_delay
            self._client, self._lost = client, lost
            self.connections += 1
            logger.info("chronos: connected to %s for triggers", self._url)
            for job_id in list(self._jobs()):
                self._emit(JOIN_EVENT, job_id)
            if self._stop.is_set():
                self._lost.set()
            lost.wait()
            self._shutdown_client(client)
            if self._stop.wait(random.uniform(delay / 2, delay)):
                return

    def _tcp_socket(self) -> socket.socket | None:
        """For a plain-HTTP endpoint, the TCP connection the WebSocket will use.

        Engine.IO does not close a WebSocket whose handshake fails after connecting (a
        server going down at that moment), so we open the socket ourselves and always
        close it. TLS endpoints let the WebSocket library connect (it must wrap the socket).
        """
        url = urlsplit(self._url)
        if url.scheme != "http" or self._transports != ["websocket"]:
            return None
        return socket.create_connection(
            (url.hostname or "localhost", url.port or 80), timeout=self._connect_timeout
        )

    def _new_client(self, lost: threading.Event) -> Any:
        # Our own HTTP session, closed with the client: Engine.IO drops its own without
        # closing it, which leaks a socket per reconnect.
        session = self._requests.Session()
        tcp = self._tcp_socket()
        client = self._socketio.Client(
            http_session=session,
            websocket_extra_options={"socket": tcp} if tcp is not None else {},
            reconnection=False,  # reconnecting is ours: one loop, stoppable, with backoff
            handle_sigint=False,
            logger=False,
            engineio_logger=False,
            request_timeout=self._connect_timeout,
        )
        client.on("disconnect", lambda *_args: lost.set())
        client.on(TRIGGER_EVENT, self._on_trigger)
        client.chronos_session = session
        client.chronos_socket = tcp
        return client

    @staticmethod
    def _shutdown_client(client: Any) -> None:
        try:
            client.shutdown()
        except Exception:
            logger.debug("chronos: closing the socket failed", exc_info=True)
        try:
            # Engine.IO leaves its websocket open when the server drops the connection.
            websocket = getattr(client.eio, "ws", None)
            if websocket is not None:
                websocket.close()
        except Exception:
            logger.debug("chronos: closing the websocket failed", exc_info=True)
        try:
            if client.chronos_socket is not None:
                client.chronos_socket.close()
        except Exception:
            logger.debug("chronos: closing the TCP socket failed", exc_info=True)
        try:
            client.chronos_session.close()
        except Exception:
            logger.debug("chronos: closing the HTTP session failed", exc_info=True)

    def _emit(self, event: str, data: Any, callback: Callable[..., Any] | None = None) -> None:
        client = self._client
        if client is None or not client.connected:
            logger.debug("chronos: not connected; %s not sent", event)
            return
        try:
            client.emit(event, data, callback=callback)
        except Exception:
            logger.debug("chronos: could not emit %s", event, exc_info=True)

    # -- triggers ------------------------------------------------------------------------

    def _on_trigger(self, data: Any = None, *_extra: Any) -> dict[str, Any]:
        try:
            ack = self._accept(data)
        except Exception:
            logger.warning("chronos: could not handle a trigger", exc_info=True)
            ack = {"accepted": False, "outcome": "error"}
        ack.setdefault("runnerId", self._executor.runner_id)
        self._emit(ACK_EVENT, ack)
        return ack  # the Socket.IO acknowledgement, when the server asked for one

    def _accept(self, data: Any) -> dict[str, Any]:
        try:
            trigger = JobTrigger.model_validate(data)
        except ValidationError as error:
            logger.warning("chronos: ignoring a malformed trigger: %s", error)
            ids = data if isinstance(data, dict) else {}
            return {
                "triggerId": ids.get("triggerId"),
                "jobId": ids.get("jobId"),
                "accepted": False,
                "outcome": "invalid",
            }
        ack: dict[str, Any] = {"triggerId": trigger.trigger_id, "jobId": trigger.job_id}
        job = self._jobs().get(trigger.job_id)
        with self._lock:
            if trigger.trigger_id in self._seen:
                return {**ack, "accepted": True, "outcome": "duplicate"}
            if not self._accepting:
                return {**ack, "accepted": False, "outcome": "stopping"}
            if job is None:
                return {**ack, "accepted": False, "outcome": "unknown-job"}
            self._seen[trigger.trigger_id] = None
            while len(self._seen) > self._seen_limit:
                self._seen.popitem(last=False)
        admission = self._executor.submit(
            RunRequest(
                job,
                trigger.scheduled_for,
                trigger_id=trigger.trigger_id,
                on_finished=self._finished,
            )
        )
        if admission is Admission.STOPPING:
            with self._lock:
                self._seen.pop(trigger.trigger_id, None)
            return {**ack, "accepted": False, "outcome": "stopping"}
        return {**ack, "accepted": True, "outcome": admission.value}

    def _finished(self, request: RunRequest, event: ExecutionEvent | None) -> None:
        with self._lock:
            self._unacked_done += 1

        def acked(*_args: Any) -> None:
            with self._lock:
                self._unacked_done -= 1
                self._done_acked.notify_all()

        self._emit(
            DONE_EVENT,
            {
                "triggerId": request.trigger_id,
                "jobId": request.job.job_id,
                "execId": event.exec_id if event is not None else None,
                "status": event.status.value if event is not None else None,
            },
            callback=acked,
        )
