"""Job registration off the scheduler's thread.

Registering is an HTTP request, and APScheduler calls its listeners on the thread that
added the job or on the scheduler's own thread, so `submit()` only stores the definition
and a daemon thread sends it. Definitions are coalesced by job id (the newest wins) and a
definition identical to the one last accepted is not sent again, so a scheduler that keeps
modifying a job does not turn into a stream of requests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable

from chronos_core import ChronosClient, JobDefinition, RejectedError, TransportError

__all__ = ["JobRegistrar"]

logger = logging.getLogger("chronos_integrations.apscheduler")

# After a failed request the next attempt waits this long, doubling up to the ceiling.
RETRY_PAUSE = 1.0
RETRY_PAUSE_MAX = 60.0


class JobRegistrar:
    """Sends job definitions from a background thread; `submit()` never blocks or raises."""

    def __init__(self, client_factory: Callable[[], ChronosClient]) -> None:
        self._client_factory = client_factory
        self._client: ChronosClient | None = None
        self._init_state()

    def _init_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._pending: dict[str, JobDefinition] = {}
        self._accepted: dict[str, JobDefinition] = {}
        self._failures = 0
        self.registered = 0
        self.rejected = 0

    def submit(self, definitions: Iterable[JobDefinition]) -> None:
        """Queue definitions for registration."""
        try:
            if self._pid != os.getpid():
                self._init_state()  # a forked child: the parent's thread is not here
            with self._lock:
                if self._stop:
                    return
                for definition in definitions:
                    if self._accepted.get(definition.id) != definition:
                        self._pending[definition.id] = definition
                if not self._pending:
                    return
                self._idle.clear()
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="chronos-apscheduler-registrar", daemon=True
                    )
                    self._thread.start()
            self._wakeup.set()
        except Exception:
            logger.warning("chronos: could not queue job registrations", exc_info=True)

    def forget(self, job_id: str) -> None:
        """Drop a pending definition (its job was removed before it was sent)."""
        with self._lock:
            self._pending.pop(job_id, None)
            self._accepted.pop(job_id, None)

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending; True if that happened within `timeout` seconds."""
        self._wakeup.set()
        return self._idle.wait(timeout)

    def close(self, timeout: float) -> None:
        """Send what is pending (bounded by `timeout`), then stop the thread."""
        self.flush(timeout)
        with self._lock:
            self._stop = True
            thread, self._thread = self._thread, None
        self._wakeup.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.1, timeout))
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _run(self) -> None:
        pause = 0.0
        while True:
            self._wakeup.wait(pause if pause > 0 else None)
            self._wakeup.clear()
            with self._lock:
                if self._stop:
                    self._idle.set()
                    return
                batch = list(self._pending.values())
                self._pending.clear()
            if batch:
                pause = self._send(batch)
            with self._lock:
                if not self._pending:
                    self._idle.set()

    def _send(self, batch: list[JobDefinition]) -> float:
        """Send one batch; the pause before the next attempt (0 if nothing is to be retried)."""
        try:
            if self._client is None:
                self._client = self._client_factory()
            result = self._client.register_jobs(batch)
        except RejectedError as refusal:
            self.rejected += len(batch)
            logger.warning("chronos: the server refused %d job(s): %s", len(batch), refusal)
            return 0.0
        except (TransportError, Exception) as error:  # retried: the server may come back
            self._failures += 1
            pause = min(RETRY_PAUSE * 2.0 ** min(self._failures - 1, 16), RETRY_PAUSE_MAX)
            logger.debug("chronos: job registration failed (%s), retry in %.0fs", error, pause)
            with self._lock:
                for definition in batch:
                    self._pending.setdefault(definition.id, definition)
                self._idle.clear()
            return pause
        self._failures = 0
        refused = {batch[e.index].id for e in result.errors if 0 <= e.index < len(batch)}
        for item in result.errors:
            logger.warning("chronos: job registration refused: %s %s", item.field, item.message)
        with self._lock:
            for definition in batch:
                if definition.id not in refused:
                    self._accepted[definition.id] = definition
        self.registered += len(batch) - len(refused)
        self.rejected += len(refused)
        return 0.0
