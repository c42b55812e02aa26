"""A real HTTP server on loopback that records what the SDK sends and answers as scripted.

It speaks the ingestion API closely enough for the exporter's tests: by default every batch
is acknowledged like the original server does; a script of responses (status, headers,
delay) can be queued; `refuse()` closes the listening socket so connections are refused
until `resume()` binds the same port again.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


class RecordingServer:
    """Records requests; answers from `script` first, then with 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                if self.headers.get("content-encoding") == "gzip":
                    raw = gzip.decompress(raw)
                body = json.loads(raw)
                with owner._lock:
                    answer = owner.script.popleft() if owner.script else Scripted()
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.body
                if payload is None:
                    count = len(body.get("executions", body.get("jobs", [])))
                    payload = {"success": 200 <= answer.status < 300, "ingested": count}
                data = json.dumps(payload).encode()
                with owner._lock:
                    owner.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            answer.status,
                        )
                    )
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        httpd.allow_reuse_address = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def refuse(self) -> None:
        """Stop listening: new connections are refused until `resume()`."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def resume(self) -> None:
        """Listen again on the same port."""
        for _ in range(50):
            try:
                self.start()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"port {self.port} did not come free")

    def stop(self) -> None:
        self.refuse()

    def respond(self, *answers: Scripted) -> None:
        with self._lock:
            self.script.extend(answers)

    def acknowledged_exec_ids(self) -> list[str]:
        """Exec ids of every execution in a request the server answered with 2xx."""
        with self._lock:
            return [
                item["execId"]
                for request in self.requests
                if 200 <= request.status < 300 and request.path.endswith("/executions/batch")
                for item in request.body["executions"]
            ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until `count` executions were acknowledged; returns their exec ids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = self.acknowledged_exec_ids()
            if len(ids) >= count:
                return ids
            time.sleep(0.02)
        return self.acknowledged_exec_ids()


class BlackHole:
    """A listening socket that never accepts: connections open, requests never answered."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
