"""How a forked work horse hands the outcome of its job to the worker that forked it.

The horse ends with `os._exit()`: no atexit hook runs, so an event left in an exporter's
queue there is lost. Two ways out: flush in the horse (an HTTP round trip for every job,
paid in throughput, and a stuck server would hold each horse up to the flush timeout), or
report from the parent. We report from the parent: the run is captured in the horse, where
the job runs (exact timing, its stdout/stderr, the exception object for the stack and
snippet), and what only the horse knows (`RunCapture.conclude()`: status, timing, error,
output) is written to a pipe opened before the fork. The parent prepared the run before the
fork (job id, queue, labels...), so that is all that crosses. The parent reads the pipe once
the horse has exited and hands the bytes, with its copy of the run, to its own long-lived
exporter, whose thread makes the event (`HorseReport.event`) when it sends the next batch.
A report too large for the pipe is sent from the horse with a bounded flush instead; see
`HorseChannel.send`.

Why this split: after the fork every page the horse writes is copied, and in Python touching
an object writes its reference count, so what the horse builds or consults costs page faults;
the parent pays one (cheaper) fault per page it writes after each fork, so a page the
exporter's thread touches once per batch costs less than one touched once per job.

Each report crosses as a `marshal` of plain values (`to_wire`: the status as its value, times
as POSIX timestamps, which turn back into the same microseconds): pickling the datetimes and
the enum would touch their classes and modules in every horse, some 50 more pages. The horse
is a fork of this very process, so both ends run the same interpreter; and only the horse (and
whatever it forks) holds the writing end of the pipe, code that already runs with the
worker's own authority, so reading what it wrote adds no trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import struct
from datetime import UTC, datetime
from typing import Any

from chronos_core import ExecutionEvent, ExecutionStatus, RunCapture
from chronos_core._models import (
    MAX_LOG_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_SNIPPET_LENGTH,
    MAX_STACK_LENGTH,
)

__all__ = ["HorseChannel", "HorseReport", "decode_frames", "from_wire", "report_size", "to_wire"]

logger = logging.getLogger("chronos_integrations.rq")

# A pipe holds 64 KiB unless grown; Linux lets an unprivileged process grow one to
# /proc/sys/fs/pipe-max-size (1 MiB by default). One write no larger than the pipe's free
# space is never split or blocked.
DEFAULT_PIPE_SIZE = 1 << 16
PIPE_SIZE = 1 << 20
# What a report holds besides its texts (keys, times, ids, the error's type), generously.
_REPORT_OVERHEAD = 4_096
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
# Each item is one frame: its length (4 bytes, big-endian), then its pickle.
_FRAME_HEADER = struct.Struct(">I")


class HorseChannel:
    """A pipe from one work horse to its parent, carrying plain values (`marshal`) as
    length-prefixed frames."""

    __slots__ = ("_reader", "_writer", "capacity", "parent_pid")

    def __init__(self, size: int = PIPE_SIZE) -> None:
        """A pipe for reports of up to `size` bytes (see `report_size`), as far as it can be
        grown to; one opened per job, so as few system calls as can be."""
        pipe2 = getattr(os, "pipe2", None)  # Linux; one call for both flags
        if pipe2 is not None:
            self._reader, self._writer = pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        else:
            self._reader, self._writer = os.pipe()
            os.set_blocking(self._writer, False)
            os.set_blocking(self._reader, False)
        self.parent_pid = os.getpid()
        self.capacity = DEFAULT_PIPE_SIZE
        if size > DEFAULT_PIPE_SIZE:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._writer, _F_SETPIPE_SZ, min(size, PIPE_SIZE))
        with contextlib.suppress(OSError):
            # Asked even when not grown: past a user's pipe-user-pages-soft, Linux makes
            # smaller pipes.
            self.capacity = int(fcntl.fcntl(self._writer, _F_GETPIPE_SZ))

    @property
    def in_horse(self) -> bool:
        """Whether this process is the horse (the channel was opened by our parent)."""
        return os.getpid() != self.parent_pid

    # -- the horse ---------------------------------------------------------------------

    # Plain try/except rather than contextlib.suppress in what the horse runs: that is three
    # more Python functions for every horse to touch.

    def send(self, items: list[Any]) -> list[Any]:
        """Write items to the parent; returns those that did not fit, for the caller to
        deliver itself. Never blocks: the parent reads only after the horse has exited."""
        if not items:
            return []
        frames = [_frame(item) for item in items]
        payload = b"".join(frames) if len(frames) > 1 else frames[0]
        if len(payload) > self.capacity:
            fitting: list[Any] = []
            size = 0
            for item, frame in zip(items, frames, strict=True):
                size += len(frame)
                if size > self.capacity:
                    break
                fitting.append(item)
            rest = items[len(fitting) :]
            return self.send(fitting) + rest if fitting else rest
        try:
            written = os.write(self._writer, payload)
        except OSError:
            logger.debug("chronos: could not write to the parent worker", exc_info=True)
            return items
        if written != len(payload):  # cannot happen on an empty pipe of this size
            logger.warning("chronos: partial write to the parent worker; reports may be lost")
        return []

    def send_one(self, item: Any) -> bool:
        """`send([item])` for the horse's one report, with fewer calls; False if it did not
        fit or could not be written, for the caller to deliver itself."""
        try:
            frame = _frame(item)
        except ValueError:  # not plain values after all: the caller sends it another way
            logger.debug("chronos: a report the pipe cannot carry", exc_info=True)
            return False
        if len(frame) > self.capacity:
            return False
        try:
            os.write(self._writer, frame)
        except OSError:
            logger.debug("chronos: could not write to the parent worker", exc_info=True)
            return False
        return True

    def close_writer(self) -> None:
        """Close the writing end (the parent before it reads; the horse when done)."""
        writer, self._writer = self._writer, -1
        if writer < 0:
            return
        try:  # noqa: SIM105
            os.close(writer)
        except OSError:
            pass

    # -- the parent --------------------------------------------------------------------

    def receive_bytes(self) -> bytes:
        """In the parent, after the horse exited: everything it wrote. Closes the pipe."""
        chunks: list[bytes] = []
        try:
            while True:
                chunk = os.read(self._reader, self.capacity)
                if not chunk:
                    break
                chunks.append(chunk)
        except BlockingIOError:
            pass  # a grandchild of the horse still holds the writing end: take what is there
        except OSError:
            logger.debug("chronos: could not read from the work horse", exc_info=True)
        finally:
            reader, self._reader = self._reader, -1
            with contextlib.suppress(OSError):
                os.close(reader)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        """Close both ends (the parent, when there is nothing to collect)."""
        self.close_writer()
        reader, self._reader = self._reader, -1
        if reader >= 0:
            with contextlib.suppress(OSError):
                os.close(reader)

    def receive(self) -> list[Any]:
        """In the parent, after the horse exited: every item it wrote. Closes the pipe."""
        return decode_frames(self.receive_bytes())


class HorseReport:
    """A horse's report as the parent received it, with the parent's copy of the run.

    Handed to `BatchExporter.record_deferred`: its thread calls `event()` when it sends the
    next batch, so the parent's own loop only reads the pipe (see the module's docstring).
    """

    __slots__ = ("payload", "run")

    def __init__(self, run: RunCapture, payload: bytes) -> None:
        self.run = run
        self.payload = payload

    def event(self) -> ExecutionEvent:
        """The run's event, made from the fields the horse concluded with."""
        frames = decode_frames(self.payload)
        if not frames:
            raise ValueError("the work horse's report is empty or malformed")
        return self.run.event_from(from_wire(frames[0]))


def report_size(max_log_bytes: int) -> int:
    """The largest report a run can make with this limit: texts are cut to their limits in
    UTF-8 bytes, as `marshal` stores them. With the default limit (10 000), 64 KiB."""
    log = min(max_log_bytes, MAX_LOG_LENGTH)
    stack = min(max_log_bytes, MAX_STACK_LENGTH)
    return 2 * log + stack + MAX_MESSAGE_LENGTH + MAX_SNIPPET_LENGTH + _REPORT_OVERHEAD


_TIMES = ("started_at", "finished_at")


def to_wire(fields: dict[str, Any]) -> dict[str, Any]:
    """`RunCapture.conclude()`'s fields as plain values, in place: the status as its value,
    times as POSIX timestamps (floats keep every microsecond of a date this century)."""
    fields["status"] = fields["status"]._value_
    for name in _TIMES:
        value = fields.get(name)
        if value is not None:
            fields[name] = value.timestamp()
    return fields


def from_wire(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields `to_wire` made plain, as `RunCapture.event_from()` takes them, in place."""
    fields["status"] = ExecutionStatus(fields["status"])
    for name in _TIMES:
        value = fields.get(name)
        if value is not None:
            fields[name] = datetime.fromtimestamp(value, UTC)
    return fields


def _frame(item: Any) -> bytes:
    body = marshal.dumps(item, 2)  # version 2: no back-references, nothing to count
    return _FRAME_HEADER.pack(len(body)) + body


def decode_frames(data: bytes) -> list[Any]:
    """The items of a pipe's content; a truncated or malformed frame is dropped (logged)."""
    items: list[Any] = []
    offset, end, header = 0, len(data), _FRAME_HEADER.size
    while offset + header <= end:
        (size,) = _FRAME_HEADER.unpack_from(data, offset)
        offset += header
        if offset + size > end:
            logger.warning("chronos: dropped a truncated report from the work horse")
            break
        try:
            items.append(marshal.loads(data[offset : offset + size]))
        except Exception:
            logger.warning("chronos: dropped a malformed report from the work horse")
        offset += size
    return items
