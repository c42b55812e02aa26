"""How a forked work horse hands its execution events to the worker that forked it.

The horse ends with `os._exit()`: no atexit hook runs, so an event left in an exporter's
queue there is lost. Two ways out: flush in the horse (an HTTP round trip for every job,
paid in throughput, and a stuck server would hold each horse up to the flush timeout), or
report from the parent. We report from the parent: the events are captured in the horse,
where the job runs (exact timing, its stdout/stderr, the exception object for the stack
and snippet), then written to a pipe opened before the fork; the parent reads the pipe
once the horse has exited and queues the events on its own long-lived exporter, which
batches them across jobs. An event too large for the pipe is sent from the horse with a
bounded flush instead; see `HorseChannel.send`.

Each event crosses as a pickle of the fields it was built from, and the parent rebuilds it
with `trusted_event`, as the horse did: no JSON encoding in the horse and no validation in
the parent. The horse is a fork of this very process, so the values are those of the same
code; and only the horse (and whatever it forks) holds the writing end of the pipe, code
that already runs with the worker's own authority, so unpickling adds no trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import struct

from chronos_core import ExecutionEvent
from chronos_core._events import trusted_event

__all__ = ["HorseChannel"]

logger = logging.getLogger("chronos_integrations.rq")

# Linux lets an unprivileged process grow a pipe to /proc/sys/fs/pipe-max-size (1 MiB by
# default). One write no larger than the pipe's free space is never split or blocked.
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
# Each event is one frame: its length (4 bytes, big-endian), then the pickled fields.
_FRAME_HEADER = struct.Struct(">I")


class HorseChannel:
    """A pipe from one work horse to its parent, carrying events as length-prefixed frames."""

    __slots__ = ("_reader", "_writer", "capacity", "parent_pid")

    def __init__(self) -> None:
        self._reader, self._writer = os.pipe()
        self.parent_pid = os.getpid()
        self.capacity = 65_536
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._writer, _F_SETPIPE_SZ, PIPE_SIZE)
        with contextlib.suppress(OSError):
            self.capacity = int(fcntl.fcntl(self._writer, _F_GETPIPE_SZ))
        os.set_blocking(self._writer, False)
        os.set_blocking(self._reader, False)

    @property
    def in_horse(self) -> bool:
        """Whether this process is the horse (the channel was opened by our parent)."""
        return os.getpid() != self.parent_pid

    # -- the horse ---------------------------------------------------------------------

    def horse_started(self) -> None:
        """In the horse: drop the reading end, which belongs to the parent."""
        with contextlib.suppress(OSError):
            os.close(self._reader)

    def send(self, events: list[ExecutionEvent]) -> list[ExecutionEvent]:
        """Write events to the parent; returns those that did not fit, for the caller to
        deliver itself. Never blocks: the parent reads only after the horse has exited."""
        if not events:
            return []
        frames = [_frame(event) for event in events]
        payload = b"".join(frames)
        if len(payload) > self.capacity:
            fitting: list[ExecutionEvent] = []
            size = 0
            for event, frame in zip(events, frames, strict=True):
                size += len(frame)
                if size > self.capacity:
                    break
                fitting.append(event)
            rest = events[len(fitting) :]
            return self.send(fitting) + rest if fitting else rest
        try:
            written = os.write(self._writer, payload)
        except OSError:
            logger.debug("chronos: could not write to the parent worker", exc_info=True)
            return events
        if written != len(payload):  # cannot happen on an empty pipe of this size
            logger.warning("chronos: partial write to the parent worker; events may be lost")
        return []

    def close_writer(self) -> None:
        """Close the writing end (the parent right after the fork; the horse when done)."""
        with contextlib.suppress(OSError):
            os.close(self._writer)

    # -- the parent --------------------------------------------------------------------

    def receive(self) -> list[ExecutionEvent]:
        """In the parent, after the horse exited: every event it wrote. Closes the pipe."""
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
            with contextlib.suppress(OSError):
                os.close(self._reader)
        return _events_of(b"".join(chunks))


def _frame(event: ExecutionEvent) -> bytes:
    # The fields the event was made with (`model_fields_set`), so the parent's copy is the
    # same object down to which fields count as set.
    fields = event.__dict__
    body = pickle.dumps(
        {name: fields[name] for name in event.model_fields_set}, pickle.HIGHEST_PROTOCOL
    )
    return _FRAME_HEADER.pack(len(body)) + body


def _events_of(data: bytes) -> list[ExecutionEvent]:
    events: list[ExecutionEvent] = []
    offset, end, header = 0, len(data), _FRAME_HEADER.size
    while offset + header <= end:
        (size,) = _FRAME_HEADER.unpack_from(data, offset)
        offset += header
        if offset + size > end:
            logger.warning("chronos: dropped a truncated event from the work horse")
            break
        try:
            events.append(trusted_event(pickle.loads(data[offset : offset + size])))
        except Exception:
            logger.warning("chronos: dropped a malformed event from the work horse")
        offset += size
    return events
