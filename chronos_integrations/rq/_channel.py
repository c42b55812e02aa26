"""How a forked work horse hands the outcome of its job to the worker that forked it.

The horse ends with `os._exit()`: no atexit hook runs, so an event left in an exporter's
queue there is lost. Two ways out: flush in the horse (an HTTP round trip for every job,
paid in throughput, and a stuck server would hold each horse up to the flush timeout), or
report from the parent. We report from the parent: the run is timed in the horse, where the
job runs (exact timing, its stdout/stderr, the exception object for the stack and snippet),
and what only the horse knows is written to a pipe opened before the fork: for a plain
success four numbers (start, duration, pid, and the trace when a span began in the horse),
otherwise `RunCapture.conclude()`'s fields (status, timing, error, output). The parent noted
the rest before the fork (`HorsePlan`: job id, queue, labels...). It reads the pipe once the
horse has exited and hands the bytes, with the plan, to its own long-lived exporter, whose
thread makes the event (`_report.HorseReport`) when it sends the next batch. A report too
large for the pipe is sent from the horse with a bounded flush instead; see
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
import contextvars
import fcntl
import logging
import marshal
import os
import select
import struct
from typing import TYPE_CHECKING, Any, Literal, overload

from chronos_core._limits import (
    MAX_LOG_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_SNIPPET_LENGTH,
    MAX_STACK_LENGTH,
    Source,
)
from chronos_core._tracing import current_trace_id

if TYPE_CHECKING:
    from chronos_core._capture import RunCapture
    from chronos_core._console import ConsoleCapture

__all__ = [
    "FRAME_HEADER",
    "IN_PIPE",
    "PIPE_BUF",
    "RELAYED",
    "TIMES",
    "HorseChannel",
    "HorsePlan",
    "decode_frames",
    "encode_frame",
    "horse_send",
    "report_size",
    "to_wire",
]

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
# Each item is one frame: its length (4 bytes, big-endian), then its `marshal`.
FRAME_HEADER = struct.Struct(">I")


class HorseChannel:
    """A pipe from the work horses to their parent, carrying plain values (`marshal`) as
    length-prefixed frames; a worker keeps one for its life (each horse writes, the parent
    reads once the horse has exited: `drain`)."""

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

    # -- the horse ---------------------------------------------------------------------

    # Plain try/except rather than contextlib.suppress in what the horse runs: that is three
    # more Python functions for every horse to touch.

    @property
    def writer(self) -> int:
        """The writing end's descriptor (-1 once closed)."""
        writer: int = self._writer
        return writer

    def drain(self) -> bytes:
        """In the parent, after a horse exited: what it wrote, leaving the pipe open for the
        next horse (a worker keeps one channel for its life)."""
        chunks: list[bytes] = []
        try:
            while True:
                chunk = os.read(self._reader, self.capacity)
                if not chunk:
                    break
                chunks.append(chunk)
        except BlockingIOError:
            pass  # nothing more now (a grandchild of a horse may still hold the writing end)
        except OSError:
            logger.debug("chronos: could not read from the work horse", exc_info=True)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def send_frame(self, frame: bytes) -> bool:
        """In a horse: one frame (`encode_frame`) to the parent; False if it does not fit or
        could not be written, for the caller to deliver itself. Never blocks: the pipe is
        empty when a horse starts, and the parent reads once it has exited."""
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

    def close(self) -> None:
        """Close both ends (the parent, when there is nothing to collect)."""
        self.close_writer()
        reader, self._reader = self._reader, -1
        if reader >= 0:
            with contextlib.suppress(OSError):
                os.close(reader)


class HorsePlan:
    """The run of the next work horse as its parent knows it before the fork, and what the
    horse adds to it.

    Made in the parent (a few attribute stores: no `RunCapture`, no console capture of its
    own); the horse inherits it and, for the common outcome (the job returned, printed
    nothing, did not ask to be retried), sets only `outcome`: its wall-clock start, its
    duration and its pid, as a tuple of ints (and the trace id, when a span began in the
    horse). Anything else (an error, output, a retry) makes a `RunCapture` in the horse
    (`run()`), whose `conclude()` fields go in `fields`. The parent makes the event from
    either, with a `RunCapture` of its own (`_report.HorseReport`).
    """

    __slots__ = (
        "app_version",
        "attempt",
        "channel",
        "console",
        "context",
        "exec_id",
        "facts",
        "fields",
        "job_id",
        "labels",
        "max_log_bytes",
        "outcome",
        "queue",
        "relay",
        "relayed",
        "rq_job_id",
        "sent",
        "state",
        "worker",
    )

    def __init__(
        self,
        channel: HorseChannel,
        *,
        job_id: str,
        exec_id: str,
        attempt: int,
        rq_job_id: str,
        queue: str | None,
        worker: str | None,
        labels: tuple[str, ...],
        max_log_bytes: int,
        app_version: str | None,
        console: ConsoleCapture | None,
    ) -> None:
        self.channel = channel
        self.job_id = job_id
        self.exec_id = exec_id
        self.attempt = attempt
        self.rq_job_id = rq_job_id
        self.queue = queue
        self.worker = worker
        self.labels = labels
        self.max_log_bytes = max_log_bytes
        self.app_version = app_version
        self.console = console
        # What the parent knows of the run, as plain values (for the relay: `from_facts`);
        # made here, in the call that stores them, rather than by a method of its own.
        self.facts: tuple[Any, ...] = (
            job_id, exec_id, attempt, rq_job_id, queue, worker, labels, max_log_bytes, app_version
        )  # fmt: skip
        # The parent's context at the fork, the horse's too: the trace is read from it when
        # the event is made, not in the horse (OpenTelemetry's lookup touches many pages).
        self.context = contextvars.copy_context()
        self.outcome: tuple[int, int, int, str | None] | None = None
        self.fields: dict[str, Any] | None = None
        self.sent = False  # the horse wrote its report
        # With a relay (`_relay`): its pipe's writing end, and the run's `facts` with the
        # trace read in the parent, for the horse to send its report there itself.
        self.relay = -1
        self.relayed: tuple[Any, ...] | None = None
        # A byte shared with the parent (`RELAYED`, `IN_PIPE`), or None.
        self.state: Any = None

    @classmethod
    def from_facts(cls, facts: tuple[Any, ...] | list[Any]) -> HorsePlan:
        """The plan of `facts`, in the relay process: no channel, console or context (the
        worker read the run's trace in its own context and sends it along)."""
        plan = cls.__new__(cls)
        (
            plan.job_id,
            plan.exec_id,
            plan.attempt,
            plan.rq_job_id,
            plan.queue,
            plan.worker,
            labels,
            plan.max_log_bytes,
            plan.app_version,
        ) = facts
        plan.labels = tuple(labels)
        plan.facts = tuple(facts)
        plan.channel = None  # type: ignore[assignment]
        plan.console = None
        plan.context = None  # type: ignore[assignment]
        plan.outcome = None
        plan.fields = None
        plan.sent = False
        plan.relay = -1
        plan.relayed = None
        plan.state = None
        return plan

    def trace_of(self, reported: str | None) -> str | None:
        """The run's trace: the horse's, else the one of the context the parent forked in."""
        if reported is not None or self.context is None:
            return reported
        return self.context.run(current_trace_id)

    def run(self) -> RunCapture:
        """A `RunCapture` of this run, not started (may raise `ValueError` on bad ids).

        The capture code is imported here, not with this module: a worker whose jobs only
        succeed quietly never loads it (see `_worker._load_capture`)."""
        from chronos_core._capture import RunCapture

        return RunCapture(
            self.job_id,
            source=Source.RQ,
            exec_id=self.exec_id,
            attempt=self.attempt,
            max_log_bytes=self.max_log_bytes,
            app_version=self.app_version,
            labels=self.labels,
            metadata={"rqJobId": self.rq_job_id},
            queue=self.queue,
            worker=self.worker,
        )

    def report(self) -> Any:
        """What the horse sends: the outcome tuple, or the plain fields (`to_wire`)."""
        if self.outcome is not None:
            return self.outcome
        if self.fields is not None:
            return to_wire(self.fields)
        return None


# What a horse did with its report, in the byte it shares with its parent (`HorsePlan.state`);
# 0: nothing (it died, or ended before its job ran).
RELAYED = 1
IN_PIPE = 2
# The most a pipe takes in one write that no other writer's can split (POSIX PIPE_BUF).
PIPE_BUF = getattr(select, "PIPE_BUF", 4_096)


def horse_send(plan: HorsePlan, report: Any) -> bool:
    """In the horse: its report to the relay in one write, which no other write to the
    relay's pipe can split (the worker writes there too: cron entries, runs it forwards,
    flushes), or else to the parent's pipe. False if neither took it (too large, or the
    pipe failed)."""
    body = marshal.dumps(report, 2)
    inner = FRAME_HEADER.pack(len(body)) + body
    if plan.relay >= 0 and plan.relayed is not None:
        facts, trace_id = plan.relayed
        message = marshal.dumps(("run", facts, trace_id, inner), 2)
        if len(message) + FRAME_HEADER.size <= PIPE_BUF:
            try:
                os.write(plan.relay, FRAME_HEADER.pack(len(message)) + message)
            except OSError:
                pass  # full (the relay is behind) or gone: through the parent
            else:
                if plan.state is not None:
                    plan.state[0] = RELAYED
                return True
    if not plan.channel.send_frame(inner):
        return False
    if plan.state is not None:
        plan.state[0] = IN_PIPE
    return True


def report_size(max_log_bytes: int) -> int:
    """The largest report a run can make with this limit: texts are cut to their limits in
    UTF-8 bytes, as `marshal` stores them. With the default limit (10 000), 64 KiB."""
    log = min(max_log_bytes, MAX_LOG_LENGTH)
    stack = min(max_log_bytes, MAX_STACK_LENGTH)
    return 2 * log + stack + MAX_MESSAGE_LENGTH + MAX_SNIPPET_LENGTH + _REPORT_OVERHEAD


# The fields `to_wire` makes POSIX timestamps.
TIMES = ("started_at", "finished_at")


def to_wire(fields: dict[str, Any]) -> dict[str, Any]:
    """`RunCapture.conclude()`'s fields as plain values, in place: the status as its value,
    times as POSIX timestamps (floats keep every microsecond of a date this century)."""
    fields["status"] = fields["status"]._value_
    for name in TIMES:
        value = fields.get(name)
        if value is not None:
            fields[name] = value.timestamp()
    return fields


def encode_frame(item: Any) -> bytes:
    """One item of plain values as a frame (length, then `marshal`); `ValueError` if it holds
    anything else."""
    body = marshal.dumps(item, 2)  # version 2: no back-references, nothing to count
    return FRAME_HEADER.pack(len(body)) + body


@overload
def decode_frames(data: bytes) -> list[Any]: ...


@overload
def decode_frames(data: bytes, *, partial: Literal[True]) -> tuple[list[Any], bytes]: ...


def decode_frames(data: bytes, *, partial: bool = False) -> list[Any] | tuple[list[Any], bytes]:
    """The items of a pipe's content; a truncated or malformed frame is dropped (logged).

    `partial`: `data` is what a stream has delivered so far; returns the items of its whole
    frames and the bytes of the frame still arriving.
    """
    items: list[Any] = []
    offset, end, header = 0, len(data), FRAME_HEADER.size
    while offset + header <= end:
        (size,) = FRAME_HEADER.unpack_from(data, offset)
        if offset + header + size > end:
            if partial:
                break
            logger.warning("chronos: dropped a truncated report from the work horse")
            offset = end
            break
        offset += header
        try:
            items.append(marshal.loads(data[offset : offset + size]))
        except Exception:
            logger.warning("chronos: dropped a malformed report from the work horse")
        offset += size
    if partial:
        return items, data[offset:]
    return items
