"""The exporter of a forking RQ worker, in a process of its own: the relay.

A forking worker's throughput is paid in page faults: every fork write-protects the worker's
memory, so each page the worker (or any thread of it) writes afterwards is a page fault, and
a copy while the horse lives; each page the horse writes is a copy, and the horse's exit
unmaps the whole address space. An exporter in the worker process costs on every count: its
modules (pydantic, httpx and what they bring, some 16 MB) make each fork and each exit
larger, and its thread writes pages whenever it builds and sends a batch. It also makes the
worker a process that forks while other threads may hold locks.

So `ChronosWorker` (the forking `Worker`, exporting to the `CHRONOS_*` environment's server)
starts one relay process when it starts (`python -c` running `_relay_main.main`), with the
worker's environment, in a session of its own (a Ctrl-C in the terminal stops the worker,
which then stops its relay). The relay builds the shared exporter from the environment and
answers with one JSON line: the settings the worker needs (console capture, log limit, app
version) or the error that disables Chronos. From then on the worker writes frames to the
relay's stdin (length-prefixed `marshal`, as the horses write to the worker):

- `("run", facts, trace_id, report)`: a run's `HorsePlan` facts, the trace id read in the
  worker's context, and the horse's report as it came through the horse's pipe;
- `("cron", entries)`: the RQ cron jobs the worker found in Redis (`CronEntry` tuples);
- `("flush", token, timeout)`: send everything now; the relay answers on its stdout with a
  JSON line (`token`, whether all was delivered, its exporter's counts).

The worker never blocks on the relay: its end of the pipe is non-blocking, what does not fit
waits in a bounded buffer written on the next frame, and past the bound a run is dropped and
counted (logged). When the worker's `work()` returns, it closes its end and waits for the relay
to send what it holds (bounded by the exporter's shutdown timeout). The relay reads to the end
of its stdin, which also comes when the worker dies without closing it (its horses hold the
same end only while they live), then shuts its exporter down and exits. It ignores SIGINT; on
SIGTERM (a service manager stopping the whole group) it keeps reading for the shutdown
timeout, then exits as at the end of its input.

This module is the worker's end (`RelayLink`); what the relay runs is in `_relay_main`, which
the worker never loads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import marshal
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

from chronos_integrations.rq._channel import PIPE_BUF, encode_frame

__all__ = ["RelayError", "RelayLink", "RelayRefused"]

logger = logging.getLogger("chronos_integrations.rq")

# How long the worker waits for the relay's first line (it imports the SDK's exporter).
HELLO_TIMEOUT = 30.0
# What the worker keeps for the relay when its pipe is full, before it drops runs.
MAX_PENDING_BYTES = 16 << 20
# The relay's input pipe, grown (Linux) so that one frame of a large report goes in one write.
RELAY_PIPE_SIZE = 1 << 20
# After the worker closed its end: the relay's shutdown timeout, plus this for its start-up.
CLOSE_GRACE = 2.0
# A relay that ended is replaced at its next use, at most this often (seconds).
RESTART_INTERVAL = 10.0
_F_SETPIPE_SZ = 1031


# The relay's command (`-c`: `-m` on this module would run a second copy of it, the package
# having imported it already).
_RELAY_MAIN = "import sys; from chronos_integrations.rq._relay_main import main; sys.exit(main())"


class RelayError(RuntimeError):
    """The relay could not start, or refused to."""


class RelayRefused(RelayError):
    """The relay started and refused to relay: its settings (the worker's environment) are
    invalid, or Chronos is disabled."""


class RelayLink:
    """The worker's end of its relay: `send_run`, `register_cron`, and `close`."""

    def __init__(
        self, process: subprocess.Popen[bytes], hello: dict[str, Any], wake: int = -1
    ) -> None:
        self.hello = hello
        self.capture_console = bool(hello.get("captureConsole"))
        self.max_log_bytes = int(hello.get("maxLogBytes", 10_000))
        version = hello.get("appVersion")
        self.app_version: str | None = str(version) if version else None
        self.shutdown_timeout = float(hello.get("shutdownTimeout", 5.0))
        self.dropped = 0
        #: How many times a relay that had ended was replaced.
        self.restarts = 0
        self._wake = -1
        self._use(process, wake)
        self._started = time.monotonic()
        # Frames waiting to be written to `fd`, the writing end of the relay's input. A horse
        # writes its report there itself, but only while this is empty (`idle`): its frame
        # would otherwise land in the middle of one half written. Plain attributes: the
        # worker reads both for every job.
        self.pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._lock = threading.Lock()  # the worker's loop, and a flush from another thread
        self._flush_lock = threading.Lock()
        self._flushes = 0
        self._answers = b""
        self._closed = False
        #: The relay's exporter counts, as its last answer to `flush` gave them.
        self.stats: dict[str, Any] = {}

    def _use(self, process: subprocess.Popen[bytes], wake: int) -> None:
        assert process.stdin is not None
        self.process = process
        self.fd: int = process.stdin.fileno()
        os.set_blocking(self.fd, False)
        _close(self._wake)
        self._wake = wake

    def _nudge(self) -> None:
        """Have the relay read its pipe now rather than at its next poll."""
        if self._wake >= 0:
            try:  # noqa: SIM105
                os.write(self._wake, b"!")
            except OSError:
                pass  # full (it is waking up anyway) or gone

    @classmethod
    def start(cls, timeout: float = HELLO_TIMEOUT) -> RelayLink:
        """Start the relay and read its answer; raises `RelayError` if it refuses or fails."""
        return cls(*_spawn(timeout))

    def _revive(self) -> bool:
        """Under `_lock`, the relay having ended (a crash, the OOM killer): start another, at
        most once per `RESTART_INTERVAL`. What waited for the old one is dropped (counted)."""
        now = time.monotonic()
        if now - self._started < RESTART_INTERVAL:
            return False
        self._started = now
        old = self.process
        code = old.poll()
        try:
            process, _, wake = _spawn(HELLO_TIMEOUT)
        except Exception as error:
            logger.warning("chronos: the relay process ended (%s); no new one: %s", code, error)
            return False
        for stream in (old.stdin, old.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if code is None:
            old.kill()
        old.wait()
        self.dropped += len(self.pending)
        self.pending.clear()
        self._pending_bytes = 0
        self._answers = b""
        self._use(process, wake)
        self.restarts += 1
        logger.warning("chronos: the relay process ended (%s); started another", code)
        return True

    # -- sending -------------------------------------------------------------------------

    def send_run(self, facts: tuple[Any, ...], trace_id: str | None, report: bytes) -> bool:
        """Hand one run to the relay; False if it was dropped (counted)."""
        return self._send(encode_frame(("run", facts, trace_id, report)))

    def register_cron(self, entries: list[Any]) -> None:
        """Hand the RQ cron jobs found in Redis to the relay, which registers them.

        In frames of at most `PIPE_BUF` bytes, which no other write to the pipe can split
        (a horse's, or a process a horse left behind that still holds the pipe)."""
        # A frame's size is its empty batch's plus each entry's `marshal` (version 2 writes a
        # list as a count and its items, nothing shared): measured once per entry.
        empty = len(encode_frame(("cron", [])))
        batch: list[Any] = []
        size = empty
        for entry in entries:
            entry_size = len(marshal.dumps(entry, 2))
            if empty + entry_size > PIPE_BUF:
                logger.warning("chronos: RQ cron job %r is too large to register", entry[0])
                continue
            if size + entry_size > PIPE_BUF:
                self._send(encode_frame(("cron", batch)))
                batch, size = [], empty
            batch.append(entry)
            size += entry_size
        if batch:
            self._send(encode_frame(("cron", batch)))

    @property
    def idle(self) -> bool:
        """Whether nothing waits to be written: only then may a horse write to the relay
        itself (a frame of its own in the middle of one half written would corrupt both)."""
        return not self.pending

    def flush(self, timeout: float | None = None) -> bool:
        """Hand over what waits and have the relay send everything it holds; True once it
        says all was delivered, within `timeout` seconds (default: its shutdown timeout).
        Blocks: for a worker's shutdown, tests and benchmarks, not for each job."""
        limit = self.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._flush_lock:
            self._flushes += 1
            token = self._flushes
            if not self._send(encode_frame(("flush", token, limit))):
                return False
            with self._lock:
                if not self._drain(blocking_for=limit):
                    return False
                self._nudge()
            out = self.process.stdout
            assert out is not None
            while True:
                try:
                    line, self._answers = _read_line(
                        out.fileno(), deadline - time.monotonic(), self._answers
                    )
                except (RelayError, OSError, ValueError):
                    return False
                if not line:
                    return False
                try:
                    answer = json.loads(line)
                except ValueError:
                    continue
                if isinstance(answer, dict) and answer.get("token") == token:
                    self.stats = answer.get("stats") or {}
                    return bool(answer.get("flushed"))

    def _send(self, frame: bytes) -> bool:
        with self._lock:
            if self._closed:
                self.dropped += 1
                return False
            pending = bool(self.pending) and not self._drain()
            if pending and self._pending_bytes + len(frame) > MAX_PENDING_BYTES:
                self._count_drop()
                return False
            if not pending:
                try:
                    written = os.write(self.fd, frame)
                except BlockingIOError:
                    written = 0
                except OSError:  # the relay has ended
                    if not self._revive():
                        self._count_drop()
                        return False
                    try:
                        written = os.write(self.fd, frame)
                    except OSError:
                        written = 0  # waits for the new relay, written on the next send
                if written == len(frame):
                    return True
                frame = frame[written:] if written else frame
            self.pending.append(memoryview(frame))
            self._pending_bytes += len(frame)
            return True

    def _drain(self, blocking_for: float = 0.0) -> bool:
        """Write pending frames; True when none is left. Under `_lock`."""
        deadline = time.monotonic() + blocking_for
        while self.pending:
            head = self.pending[0]
            try:
                written = os.write(self.fd, head)
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                select.select([], [self.fd], [], remaining)
                continue
            except OSError:  # the relay has ended: a new one takes the rest (see `_revive`)
                if self._revive():
                    return False
                logger.warning(
                    "chronos: the relay process is gone; %d frames lost", len(self.pending)
                )
                self.dropped += len(self.pending)
                self.pending.clear()
                self._pending_bytes = 0
                return True
            self._pending_bytes -= written
            if written == len(head):
                self.pending.popleft()
            else:
                self.pending[0] = head[written:]
        return True

    def _count_drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1_000 == 0:
            logger.warning(
                "chronos: the relay process is not keeping up; %d runs dropped", self.dropped
            )

    # -- stopping ------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Hand over what waits, close the relay's input and wait for it to exit (bounded by
        `timeout`, default: its shutdown timeout and a little more). True if it exited in
        time; a relay that did not is killed."""
        limit = self.shutdown_timeout + CLOSE_GRACE if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._lock:
            if self._closed:
                return self.process.poll() is not None
            self._closed = True
            if not self._drain(blocking_for=limit):
                lost = len(self.pending)
                logger.warning("chronos: %d frames did not reach the relay process", lost)
            if self.process.stdin is not None:
                with contextlib.suppress(OSError):
                    self.process.stdin.close()
            _close(self._wake)  # the relay wakes to read to the end of its input
            self._wake = -1
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            logger.warning("chronos: the relay process did not finish in %.1f s", limit)
            self.process.kill()
            self.process.wait()
            return False
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _spawn(timeout: float) -> tuple[subprocess.Popen[bytes], dict[str, Any], int]:
    """A relay process, its first answer and the writing end of its wake-up pipe; raises
    `RelayError` if it refuses or fails."""
    wake_reader, wake = os.pipe()
    os.set_blocking(wake, False)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _RELAY_MAIN, str(wake_reader)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            pass_fds=(wake_reader,),
            start_new_session=True,
        )
    except BaseException:
        _close(wake)
        raise
    finally:
        _close(wake_reader)
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(process.stdin.fileno(), _F_SETPIPE_SZ, RELAY_PIPE_SIZE)
        line, _ = _read_line(process.stdout.fileno(), timeout)
        if not line:
            try:
                code: int | None = process.wait(1)
            except subprocess.TimeoutExpired:
                code = None
            raise RelayError(f"the relay process ended without answering ({code})")
        hello = json.loads(line)
        if not isinstance(hello, dict) or "error" in hello:
            error = hello.get("error") if isinstance(hello, dict) else hello
            raise RelayRefused(str(error))
    except BaseException:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            stream.close()
        _close(wake)
        raise
    return process, hello, wake


def _read_line(fd: int, timeout: float, data: bytes = b"") -> tuple[bytes, bytes]:
    """One line from `fd` (after what `data` already holds), waiting at most `timeout`
    seconds in all; and what was read past it."""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RelayError(f"the relay process did not answer within {timeout:.0f} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65_536)
        if not chunk:
            break
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest
