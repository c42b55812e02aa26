"""`BatchExporter`: the one background sender every integration feeds.

`record()` runs on the user's thread and only appends to a bounded in-memory queue. A
daemon thread, started lazily and again after `fork()`, takes batches off the queue and
sends them; with a spool directory each batch is written to disk first and deleted once the
server acknowledges it.

What happens to an event, and where it is counted in `stats()`:

- acknowledged by the server → `sent`
- the queue is full → `dropped["queue_full"]`; the spool is full → `dropped["spool_full"]`
- the server refuses the batch (400/401/403/413/422, any status but 429/502/503/504) →
  `dropped["http_<status>"]`; a single item refused inside an accepted batch →
  `dropped["rejected_item"]`
- the server is unreachable or answers 429/502/503/504 → retried with backoff inside
  `export_timeout`; if that runs out the batch stays queued (or spooled) and is tried again
  after a growing pause, so an outage loses nothing up to the queue bound
- still queued when `shutdown()` runs out of time → spooled if there is a spool, else
  `dropped["shutdown"]`
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import logging
import os
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, cast

import pydantic_core

from chronos_core import _client as _client_module
from chronos_core._client import BATCH_PATH, ChronosClient
from chronos_core._config import ChronosSettings
from chronos_core._exceptions import RejectedError, TransportError
from chronos_core._models import ExecutionEvent, JobDefinition
from chronos_core._retry import RetryPolicy
from chronos_core._sink import DeferredEvent
from chronos_core._spool import Spool, SpoolEntry

__all__ = ["BatchExporter", "ExporterStats"]

logger = logging.getLogger("chronos_core.exporter")

# Pause between attempts once a batch has failed for a whole export_timeout: starts at the
# policy's backoff and grows to this ceiling while the server stays unreachable.
OUTAGE_MAX_PAUSE = 30.0
# One warning per drop reason per this many seconds, so a bad key does not flood the log.
LOG_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """A snapshot of what the exporter has done since it was created (or since fork)."""

    sent: int
    queued: int
    retried: int
    spooled: int
    dropped: dict[str, int] = field(default_factory=dict)
    #: Job definitions the server accepted, and those it refused for good.
    jobs_registered: int = 0
    jobs_rejected: int = 0

    @property
    def dropped_total(self) -> int:
        """Events dropped for any reason."""
        return sum(self.dropped.values())


class BatchExporter:
    """Queues execution events and sends them in batches from a background thread.

    Construct it with a `ChronosClient`, or with settings (keyword arguments or `CHRONOS_*`
    environment variables) from which it makes one. `record()` never blocks and never
    raises; `flush()` and `shutdown()` are bounded by their timeout even when the server
    accepts connections and never answers.
    """

    client_class: type[ChronosClient] = ChronosClient

    def __init__(
        self,
        client: ChronosClient | None = None,
        *,
        settings: ChronosSettings | None = None,
        retry: RetryPolicy | None = None,
        spool: Spool | None = None,
        **overrides: Any,
    ) -> None:
        if client is not None:
            self.settings = client.settings
        elif settings is not None and not overrides:
            self.settings = settings
        else:
            base = settings.model_dump() if settings is not None else {}
            self.settings = ChronosSettings.load(**{**base, **overrides})
        if client is None and not self.settings.disabled:
            self.settings.require_api_key()
        self.retry = retry or (client.retry if client is not None else RetryPolicy())
        self._given_client = client
        if spool is None and self.settings.spool_dir is not None:
            spool = Spool(self.settings.spool_dir)
        self.spool = spool
        self._origin_pid = os.getpid()
        self._max_queue = self.settings.max_queue_size
        self._batch_size = self.settings.max_batch_size
        self._batch_bytes = self.settings.max_batch_bytes
        self._init_state()
        self._pid = os.getpid()
        if not self.settings.disabled:
            # Made now, on the constructing thread, rather than by the sending thread at an
            # arbitrary moment (a fork in between would be unsafe); cheap after the first.
            self._get_client()
        if self.spool is not None and self.spool.pending():
            # Batches left by a process that died: adopt them and send them now.
            self._start_thread()
        self_ref = weakref.ref(self)
        atexit.register(_flush_at_exit, self_ref)

    def _init_state(self) -> None:
        """Everything that must be fresh in a new process (at construction and after fork).

        `_pid` is set by the caller once the whole state is in place: other threads read it
        without a lock to tell whether the state is theirs (see `_own`).
        """
        pid = os.getpid()
        self._queue: deque[ExecutionEvent | DeferredEvent] = deque()
        self._held: list[ExecutionEvent | DeferredEvent] | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(threading.Lock())
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        # See `_update_open_below`: 0 until the thread is started.
        self._open_below = 0
        # An httpx client's connections must not be shared with a forked child.
        self._client: ChronosClient | None = self._given_client if pid == self._origin_pid else None
        self._inflight = 0
        self._busy = False
        self._flush_requested = False
        self._pause_until = 0.0
        self._failures = 0
        self._sent = 0
        self._retried = 0
        self._spooled = 0
        self._dropped: Counter[str] = Counter()
        # Job definitions waiting to be registered, coalesced by id (the newest wins), and
        # the last definition the server accepted for each id (identical ones are not resent).
        self._jobs_pending: dict[str, JobDefinition] = {}
        self._jobs_accepted: dict[str, JobDefinition] = {}
        self._jobs_registered = 0
        self._jobs_rejected = 0
        self._last_log: dict[str, float] = {}

    # -- the user's thread ---------------------------------------------------------------

    def record(self, event: ExecutionEvent) -> bool:
        """Queue one event for delivery. Returns False if it was dropped (and counts why)."""
        return self.record_deferred(event)

    def record_deferred(self, run: DeferredEvent | ExecutionEvent) -> bool:
        """Queue a finished run whose event this exporter's thread builds (`run.event()`).

        For integrations with many short runs: the job's thread only hands over a small
        record, and making the event, like encoding it, happens off that thread. Same rules as
        `record()` (which queues its event here): never blocks, never raises, False (counted)
        when dropped.
        """
        try:
            if self._pid != _Process.pid:
                self._own()
            queue = self._queue
            # One test for the usual case: open, enabled, room left, thread started.
            if len(queue) >= self._open_below:
                return self._refuse(run)
            queue.append(run)
            # Once a batch is full the thread is woken (once: an Event's set() takes a lock).
            if len(queue) >= self._batch_size and not self._wakeup.is_set():
                self._wakeup.set()
            return True
        except Exception:  # never raise into the user's job
            with contextlib.suppress(Exception):
                self._drop("internal_error", 1)
            return False

    def _refuse(self, item: ExecutionEvent | DeferredEvent) -> bool:
        """`record_deferred`'s uncommon cases: closed, disabled, full, or no thread yet."""
        if self._closed or self.settings.disabled:
            self._drop("shutdown" if self._closed else "disabled", 1)
            return False
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._drop("queue_full", 1)
            return False
        queue.append(item)
        if self._thread is None:
            self._start_thread()
        self._update_open_below()
        if len(queue) >= self._batch_size and not self._wakeup.is_set():
            self._wakeup.set()
        return True

    def _update_open_below(self) -> None:
        """`_open_below`: the queue length from which `record_deferred` takes the slow path
        (0 while closed, disabled or without a thread; else the queue's bound)."""
        if self._closed or self.settings.disabled or self._thread is None:
            self._open_below = 0
        else:
            self._open_below = self._max_queue

    def register_jobs(self, jobs: Iterable[JobDefinition]) -> None:
        """Queue job definitions for registration; the exporter's thread sends them.

        Never blocks and never raises. Definitions are coalesced by job id (the newest wins),
        a definition identical to the one the server last accepted is not sent again, and
        registrations go out before the execution batches queued with them. Transient
        failures are retried like execution batches; `flush()` waits for them too.
        """
        try:
            self._own()
            if self._closed or self.settings.disabled:
                return
            with self._lock:
                for job in jobs:
                    if self._jobs_accepted.get(job.id) != job:
                        self._jobs_pending[job.id] = job
                if not self._jobs_pending:
                    return
            if self._thread is None:
                self._start_thread()
            self._wakeup.set()
        except Exception:
            logger.warning("chronos: could not queue job registrations", exc_info=True)

    def forget_job(self, job_id: str) -> None:
        """Drop a pending registration and the memory of an accepted one (job removed)."""
        self._own()
        with self._lock:
            self._jobs_pending.pop(job_id, None)
            self._jobs_accepted.pop(job_id, None)

    def record_many(self, events: Iterable[ExecutionEvent]) -> int:
        """Queue several events; returns how many were accepted."""
        return sum(1 for event in events if self.record(event))

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; True if nothing is left pending within `timeout`."""
        self._own()
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self._is_idle():
            return True
        if self._thread is None:
            self._start_thread()
        with self._idle:
            self._flush_requested = True
            self._wakeup.set()
            while not self._is_idle():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, stop the thread and refuse further events; bounded by `timeout` seconds.

        Events still pending after the timeout are spooled when a spool is configured,
        otherwise dropped and counted as `shutdown`. Returns True if everything was sent.
        """
        self._own()
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        self._closed = True
        self._update_open_below()
        self._stop.set()
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0))
            if thread.is_alive() and self.spool is None:
                # The request (or the next attempt of a batch kept through an outage) may
                # still succeed, but nobody will be here to see it.
                pending = self._inflight or len(self._held or ())
                self._held = None
                if pending:
                    self._drop("shutdown", pending)
        leftover = self._take(len(self._queue))
        if self._held:
            # A batch the thread kept for its next attempt (the server was unreachable).
            leftover = self._held + leftover
            self._held = None
        if leftover:
            self._spool_events(leftover, "shutdown")
        client = self._client
        if client is not None and client is not self._given_client and not self._busy:
            client.close()
        return flushed

    def stats(self) -> ExporterStats:
        """Counters since construction (or since fork, in a child process)."""
        self._own()
        held = len(self._held) if self._held else 0
        # Spooled batches are on disk whether in flight or not.
        pending = held + self._inflight if self.spool is None else self.spool.owned()
        return ExporterStats(
            sent=self._sent,
            queued=len(self._queue) + pending,
            retried=self._retried,
            spooled=self._spooled,
            dropped=dict(self._dropped),
            jobs_registered=self._jobs_registered,
            jobs_rejected=self._jobs_rejected,
        )

    # -- internals -----------------------------------------------------------------------

    def _is_idle(self) -> bool:
        if self._queue or self._held or self._busy or self._jobs_pending:
            return False
        return self.spool is None or self.spool.owned() == 0

    def _drop(self, reason: str, count: int) -> None:
        with self._lock:
            self._dropped[reason] += count
        now = time.monotonic()
        if now - self._last_log.get(reason, -LOG_EVERY) >= LOG_EVERY:
            self._last_log[reason] = now
            logger.warning("chronos: dropped %d event(s): %s", count, reason)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="chronos-exporter", daemon=True)
            self._thread.start()
            self._update_open_below()

    def _own(self) -> None:
        """In a forked child that has not used this exporter yet: its own state first.

        Under a lock of the child's own: two of its threads may be the first to use the
        exporter at the same time, and the state must be rebuilt once, not once each (the
        second rebuild would drop what the first thread queued).
        """
        if self._pid != _Process.pid:
            with _Process.lock:
                if self._pid != _Process.pid:
                    self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        """The child gets its own queue and thread; the parent's pending events stay there.

        Done on the child's first use of the exporter (every public method checks), not at
        the fork: a child that never records (an RQ work horse, whose parent reports for it)
        then touches none of it. Until then the child has copies of the parent's locks,
        possibly held by a parent thread at the fork; nothing takes them before this runs.
        What the replaced state held (queued events, the HTTP client and its connection pool)
        stays referenced rather than freed: freeing it would write to each of those objects
        (reference counts), and every page a child writes after a fork is copied. An RQ
        worker forks a work horse per job, so that would be paid on every job.
        """
        closed = self._closed
        self._inherited = tuple(vars(self).values())
        self._init_state()
        if closed:  # a shut-down exporter stays shut down in the child
            self._closed = True
            self._stop.set()
        self._pid = _Process.pid

    def _take(self, limit: int) -> list[ExecutionEvent | DeferredEvent]:
        batch: list[ExecutionEvent | DeferredEvent] = []
        append = batch.append
        popleft = self._queue.popleft
        try:
            # Other threads only append (but `shutdown()`, which may take at the same time).
            for _ in range(min(limit, len(self._queue))):
                append(popleft())
        except IndexError:
            pass
        return batch

    @property
    def client(self) -> ChronosClient:
        """The HTTP client this exporter sends with; use it to register jobs, for example."""
        return self._get_client()

    def _get_client(self) -> ChronosClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.client_class(settings=self.settings, retry=self.retry)
        return self._client

    def _run(self) -> None:
        interval = self.settings.flush_interval
        while True:
            urgent = self._flush_requested or self._stop.is_set()
            woken = False
            if not urgent:
                paused_for = self._pause_until - time.monotonic()
                woken = self._wakeup.wait(paused_for if paused_for > 0 else interval)
            self._wakeup.clear()
            urgent = self._flush_requested or self._stop.is_set()
            if not urgent and time.monotonic() < self._pause_until:
                continue  # woken by a full batch during an outage pause: keep pausing
            self._flush_requested = False
            try:
                self._busy = True
                # Woken by a full batch: send full batches only. What is left waits for the
                # next full batch or the interval, rather than leaving in a string of small
                # requests while events keep coming (one per request's round trip).
                self._export_pending(drain=urgent or not woken)
            except Exception:
                logger.exception("chronos: exporter error")
            finally:
                self._busy = False
                with self._idle:
                    self._idle.notify_all()
            if self._stop.is_set() and (self._is_idle() or self._failures):
                return

    def _export_pending(self, drain: bool = True) -> None:
        """Send what is queued: everything, or with `drain=False` full batches only."""
        if self._jobs_pending and not self._register_pending():
            return
        least = 1 if drain else self._batch_size
        if self.spool is not None:
            while len(self._queue) >= least:
                self._spool_events(self._take(self._batch_size), "spool_full")
            for entry in self.spool.pending():
                if not self._send_spooled(entry):
                    return
            return
        while self._held or len(self._queue) >= least:
            batch = self._held or self._take(self._batch_size)
            self._held = None
            bodies = self._encode(batch)
            for number, (body, items) in enumerate(bodies):
                if self._send(body, len(items)) is _Outcome.RETRY_LATER:
                    # This request and those after it: the next attempt encodes them again.
                    self._held = [item for _, rest in bodies[number:] for item in rest]
                    return

    def _send_spooled(self, entry: SpoolEntry) -> bool:
        try:
            body = entry.read()
        except FileNotFoundError:
            return True
        outcome = self._send(body, entry.events)
        if outcome is _Outcome.RETRY_LATER:
            return False
        assert self.spool is not None
        self.spool.remove(entry)
        return True

    def _spool_events(self, events: list[ExecutionEvent | DeferredEvent], reason: str) -> bool:
        """Write `events` to the spool (one file per request); what is not written is
        dropped and counted under `reason`. True if everything was written."""
        if self.spool is None:
            self._drop(reason, len(events))
            return False
        bodies = self._encode(events)
        for number, (body, items) in enumerate(bodies):
            try:
                written = self.spool.write(body, len(items))
            except OSError:
                logger.warning("chronos: could not write to spool %s", self.spool.directory)
                written = None
            if written is None:
                self._drop(reason, sum(len(rest) for _, rest in bodies[number:]))
                return False
            self._spooled += len(items)
        return True

    def _encode(
        self, batch: list[ExecutionEvent | DeferredEvent]
    ) -> list[tuple[bytes, list[ExecutionEvent | DeferredEvent]]]:
        """The request bodies of `batch`, each with the events it holds, in order.

        Usually one body. A batch whose JSON is larger than `max_batch_bytes` is split into
        several below it; an event larger than that on its own goes alone (the server may
        refuse it with a 413, which drops and counts that one request).

        Deferred runs are turned into events here, on this thread; one that fails to is
        dropped and counted as `internal_error` rather than holding up the rest.
        """
        kept: list[ExecutionEvent | DeferredEvent] = []
        forms: list[ExecutionEvent | dict[str, Any] | bytes] = []
        failed = 0
        encoded = 0  # how many came as JSON
        # The class of the item before, and its `wire_json` method if it is a plain function
        # of the class: a batch is mostly runs of one kind, looked at once, not once per run.
        kind: type | None = None
        method: Callable[[Any], bytes] | None = None
        for item in batch:
            if type(item) is not kind:
                kind = type(item)
                method = getattr(kind, "wire_json", None)
                if not isinstance(method, FunctionType):
                    method = None
            if method is not None:
                try:
                    forms.append(method(item))
                except Exception:
                    failed += 1
                    logger.debug("chronos: could not build a deferred event", exc_info=True)
                    continue
                encoded += 1
            elif isinstance(item, ExecutionEvent):
                forms.append(item)
            else:
                try:
                    wire_json = getattr(item, "wire_json", None)
                    if wire_json is not None:
                        forms.append(wire_json())
                        encoded += 1
                    else:
                        wire = getattr(item, "wire", None)
                        forms.append(wire() if wire is not None else item.event())
                except Exception:
                    failed += 1
                    logger.debug("chronos: could not build a deferred event", exc_info=True)
                    continue
            kept.append(item)
        if failed:
            self._drop("internal_error", failed)
        if not kept:
            return []
        if encoded:
            if encoded < len(kept):
                # Some runs came as JSON already: encode the others one by one and join.
                return self._encode_each(kept, forms)
            parts = cast("list[bytes]", forms)  # every one came as JSON
            body = _BODY_HEAD + b",".join(parts) + _BODY_TAIL
            if len(body) <= self._batch_bytes or len(kept) == 1:
                return [(body, kept)]
            return _split(kept, parts, self._batch_bytes)
        try:
            body = _BODY_OPEN + _to_json(forms, by_alias=True, exclude_none=True) + _BODY_CLOSE
        except Exception:
            # A deferred run's wire form that is not JSON: leave that one out, count it.
            return self._encode_each(kept, forms)
        if len(body) <= self._batch_bytes or len(kept) == 1:
            return [(body, kept)]
        return _split(kept, [_encode_one(form) for form in forms], self._batch_bytes)

    def _encode_each(
        self,
        kept: list[ExecutionEvent | DeferredEvent],
        forms: list[ExecutionEvent | dict[str, Any] | bytes],
    ) -> list[tuple[bytes, list[ExecutionEvent | DeferredEvent]]]:
        items: list[ExecutionEvent | DeferredEvent] = []
        parts: list[bytes] = []
        for item, form in zip(kept, forms, strict=True):
            try:
                parts.append(_encode_one(form))
            except Exception:
                self._drop("internal_error", 1)
                logger.debug("chronos: could not encode a deferred event", exc_info=True)
                continue
            items.append(item)
        return _split(items, parts, self._batch_bytes) if items else []

    def _count_retry(self, error: TransportError, wait: float) -> None:
        self._retried += 1

    def _register_pending(self) -> bool:
        """Send pending job definitions; False if the server is unreachable (retry later)."""
        with self._lock:
            batch = list(self._jobs_pending.values())
            self._jobs_pending.clear()
        try:
            result = self._get_client().register_jobs(
                batch,
                timeout=self.settings.export_timeout,
                abort=self._stop,
                on_retry=self._count_retry,
            )
        except RejectedError as error:
            self._jobs_rejected += len(batch)
            logger.warning(
                "chronos: the server refused %d job definition(s): %s", len(batch), error
            )
            return True
        except TransportError as error:
            with self._lock:
                for job in batch:
                    self._jobs_pending.setdefault(job.id, job)
            self._note_failure(error)
            return False
        self._failures = 0
        self._pause_until = 0.0
        refused = {batch[e.index].id for e in result.errors if 0 <= e.index < len(batch)}
        for item in result.errors:
            logger.warning("chronos: job definition refused: %s: %s", item.field, item.message)
        with self._lock:
            for job in batch:
                if job.id not in refused:
                    self._jobs_accepted[job.id] = job
        self._jobs_registered += len(batch) - len(refused)
        self._jobs_rejected += len(refused)
        return True

    def _note_failure(self, error: TransportError) -> None:
        """A request failed for its whole deadline: pause, longer each time, then try again."""
        self._failures += 1
        self._retried += 1
        pause = min(self.retry.backoff(self._failures, None), OUTAGE_MAX_PAUSE)
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            pause = max(pause, retry_after)
        self._pause_until = time.monotonic() + pause
        logger.debug("chronos: export failed (%s), next attempt in %.1fs", error, pause)

    def _send(self, body: bytes, events: int) -> _Outcome:
        client = self._get_client()
        self._inflight = events
        try:
            result = client.post_encoded(
                BATCH_PATH,
                body,
                timeout=self.settings.export_timeout,
                abort=self._stop,
                on_retry=self._count_retry,
            )
        except RejectedError as error:
            self._inflight = 0
            self._failures = 0
            self._pause_until = 0.0
            self._drop(error.reason, events)
            return _Outcome.DONE
        except TransportError as error:
            self._inflight = 0
            self._note_failure(error)
            return _Outcome.RETRY_LATER
        self._inflight = 0
        self._failures = 0
        self._pause_until = 0.0
        rejected = len(result.errors)
        if rejected:
            self._drop("rejected_item", rejected)
        self._sent += events - rejected
        return _Outcome.DONE


class _Outcome(enum.Enum):
    DONE = "done"  # acknowledged, or refused for good: either way not to be sent again
    RETRY_LATER = "retry_later"


# One call writes a batch of events and of deferred runs' wire dicts: pydantic-core gives an
# event the same JSON as `to_wire()` (and a TypeAdapter would), and writes a plain dict, at a
# third of the cost of `json`'s C encoder (the same strings and numbers; NaN and infinities,
# which are not JSON, as null). `exclude_none` applies to events' fields only.
_to_json = pydantic_core.to_json
_BODY_OPEN = b'{"executions":'
_BODY_CLOSE = b"}"
_BODY_HEAD = b'{"executions":['
_BODY_TAIL = b"]}"


def _encode_one(form: ExecutionEvent | dict[str, Any] | bytes) -> bytes:
    """One event's JSON, the same as its element in a whole batch's body."""
    if isinstance(form, bytes):
        return form  # a deferred run's `wire_json()`
    return _to_json(form, by_alias=True, exclude_none=True)


def _split(
    items: list[ExecutionEvent | DeferredEvent], parts: list[bytes], budget: int
) -> list[tuple[bytes, list[ExecutionEvent | DeferredEvent]]]:
    """Bodies of consecutive events, each at most `budget` bytes (or one event alone)."""
    frame = len(_BODY_HEAD) + len(_BODY_TAIL)
    bodies: list[tuple[bytes, list[ExecutionEvent | DeferredEvent]]] = []
    start = 0
    size = frame
    for index, part in enumerate(parts):
        grown = size + len(part) + (1 if index > start else 0)
        if grown > budget and index > start:
            body = _BODY_HEAD + b",".join(parts[start:index]) + _BODY_TAIL
            bodies.append((body, items[start:index]))
            start = index
            grown = frame + len(part)
        size = grown
    bodies.append((_BODY_HEAD + b",".join(parts[start:]) + _BODY_TAIL, items[start:]))
    return bodies


def _flush_at_exit(ref: Callable[[], BatchExporter | None]) -> None:
    exporter = ref()
    if exporter is None or exporter._pid != _Process.pid or exporter._closed:
        return
    with contextlib.suppress(Exception):
        exporter.shutdown(exporter.settings.shutdown_timeout)


def _hold_tls_setup() -> None:
    # The forking thread takes the lock, so no other thread is inside OpenSSL's setup.
    _client_module.tls_setup_lock.acquire()


def _release_tls_setup() -> None:
    _client_module.tls_setup_lock.release()


class _Process:
    """This process's id, read once and again in a forked child (not a system call per
    event; `_init_state` reads `os.getpid()` itself), and the lock under which a child's
    exporters rebuild their state (a new one in each child)."""

    pid = os.getpid()
    lock = threading.Lock()


def _reinit_after_fork() -> None:
    # Exporters rebuild their own state on first use in the child (`BatchExporter._own`).
    _Process.pid = os.getpid()
    _Process.lock = threading.Lock()
    _client_module.reset_tls_after_fork()


os.register_at_fork(
    before=_hold_tls_setup, after_in_parent=_release_tls_setup, after_in_child=_reinit_after_fork
)
