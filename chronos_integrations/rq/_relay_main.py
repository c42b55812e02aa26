"""The relay process itself: `main` reads the frames its worker writes and hands them to the
shared exporter (see `_relay` for the design, and for `RelayLink`, the worker's end).

A module of its own so that the worker, which forks a horse for every job, does not load the
relay's code: each module a forking worker holds costs its horses page copies.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import time
from typing import Any

from chronos_integrations.rq._channel import decode_frames
from chronos_integrations.rq._relay import RELAY_PIPE_SIZE, RelayError

__all__ = ["POLL_INTERVAL", "main"]

logger = logging.getLogger("chronos_integrations.rq")

# How often the relay reads the runs waiting in its pipe (seconds); the worker wakes it at
# once for a flush and when it closes (see `_Relay.run`).
POLL_INTERVAL = 0.25


def main() -> int:
    """The relay: read frames from stdin, hand them to the shared exporter, flush at the end."""
    logging.basicConfig(level=logging.WARNING, format="chronos relay: %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Stdout carries the answers to the worker: anything else printed goes to stderr.
    out, sys.stdout = sys.stdout, sys.stderr
    try:
        from chronos_core import detect_app_version, get_exporter

        exporter = get_exporter()
        settings = exporter.settings
        if settings.disabled:
            raise RelayError("Chronos is disabled (CHRONOS_DISABLED)")
        hello = {
            "captureConsole": bool(settings.capture_console),
            "maxLogBytes": settings.max_log_bytes,
            "appVersion": detect_app_version(settings=settings),
            "shutdownTimeout": settings.shutdown_timeout,
        }
    except Exception as error:
        out.write(json.dumps({"error": str(error) or type(error).__name__}) + "\n")
        out.flush()
        return 1
    out.write(json.dumps(hello) + "\n")
    out.flush()
    relay = _Relay(exporter, out)
    signal.signal(signal.SIGTERM, relay.on_term)
    wake = int(sys.argv[1]) if len(sys.argv) > 1 else -1
    relay.run(sys.stdin.buffer.fileno(), wake)
    if not exporter.shutdown(settings.shutdown_timeout):
        logger.warning("chronos: the relay exits with events unsent")
        return 1
    return 0


class _Relay:
    def __init__(self, exporter: Any, out: Any) -> None:
        # What making the events takes (the capture code with it), loaded now rather than
        # at the first batch.
        from chronos_integrations.rq._channel import HorsePlan
        from chronos_integrations.rq._cron import definitions_of
        from chronos_integrations.rq._report import HorseReport

        self.exporter = exporter
        self.out = out
        self._plan = HorsePlan.from_facts
        self._report = HorseReport
        self._definitions = definitions_of
        self._deadline: float | None = None

    def on_term(self, signum: int, frame: Any) -> None:
        # Stopped with the worker's whole group: keep reading what the worker still sends
        # for the shutdown timeout, then end as at the end of the input.
        if self._deadline is None:
            self._deadline = time.monotonic() + self.exporter.settings.shutdown_timeout

    def run(self, fd: int, wake: int = -1) -> None:
        """Read frames from `fd` to the end of the input.

        With a wake-up pipe (`wake`), the input is read every `POLL_INTERVAL` seconds, or at
        once when the worker writes to `wake` (a flush) or closes it (it is stopping): not
        each time a horse writes its report. A process woken for every job is scheduled
        for every job, often on the core where the worker and its horses take turns, and
        each wake-up costs them; the pipe holds what comes in between (1 MiB, some
        thousands of runs; a horse that finds it full hands its report to the worker).
        Without one, each frame is read as it comes."""
        os.set_blocking(fd, False)
        buffer = b""
        while True:
            # Waited for a second at most, so that a deadline set by SIGTERM is seen.
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return
            if wake >= 0:
                ready, _, _ = select.select([wake], [], [], POLL_INTERVAL)
                if ready and not os.read(wake, 4_096):
                    os.close(wake)  # the worker closed its end: read on to the end
                    wake = -1
            else:
                select.select([fd], [], [], 1.0)
            ended = False
            while True:
                try:
                    chunk = os.read(fd, RELAY_PIPE_SIZE)
                except BlockingIOError:
                    break
                if not chunk:
                    ended = True
                    break
                buffer += chunk
            frames, buffer = decode_frames(buffer, partial=True)
            for frame in frames:
                self.handle(frame)
            if ended:
                return

    def handle(self, frame: Any) -> None:
        try:
            kind = frame[0]
            if kind == "run":
                _, facts, trace_id, report = frame
                self.exporter.record_deferred(self._report(self._plan(facts), report, trace_id))
            elif kind == "flush":
                _, token, timeout = frame
                flushed = self.exporter.flush(timeout)
                stats = self.exporter.stats()
                counts = {"sent": stats.sent, "dropped": stats.dropped_total}
                answer = {"token": token, "flushed": flushed, "stats": counts}
                self.out.write(json.dumps(answer) + "\n")
                self.out.flush()
            elif kind == "cron":
                definitions = self._definitions(frame[1])
                if definitions:
                    self.exporter.register_jobs(definitions)
            else:
                logger.warning("chronos: the relay got a frame it does not know: %r", kind)
        except Exception:
            logger.warning("chronos: the relay could not take a frame", exc_info=True)
