"""Job functions the RQ tests enqueue; the worker subprocess imports them by name."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from typing import Any

from chronos_integrations.rq import ChronosWorker


def add(a: int, b: int) -> int:
    return a + b


def chatty(n: int) -> int:
    print(f"processing {n}")
    print("careful", file=sys.stderr)
    return n * 2


def broken() -> None:
    print("about to fail")
    raise ValueError("bad row 7")


def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke up"


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def hourly() -> str:
    return "tick"


def frozen_objects() -> int:
    """How many objects the horse's garbage collector leaves alone (the parent's)."""
    return gc.get_freeze_count()


# What a forking worker leaves to its relay process (see `_relay`).
RELAYED = ("chronos_core._exporter", "chronos_core._models", "httpx", "pydantic")


def relayed_modules_loaded() -> list[str]:
    """Which of `RELAYED` the horse (a copy of its worker) has loaded."""
    return [name for name in RELAYED if name in sys.modules]


def capture_loaded() -> bool:
    """Whether the horse (a copy of its worker, as forked) has the capture code loaded."""
    return "chronos_core._capture" in sys.modules


class FreezeReportingWorker(ChronosWorker):
    """Says, after each fork, how many objects the parent still has frozen and how many full
    collections it has made; collects in full every second fork."""

    chronos_full_collection_every = 2

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        super().fork_work_horse(job, queue)
        print(f"parent frozen after fork: {gc.get_freeze_count()}", file=sys.stderr)
        print(f"full collections: {gc.get_stats()[2]['collections']}", file=sys.stderr)
        print(f"threads: {sorted(t.name for t in threading.enumerate())}", file=sys.stderr)


class TinyPipeWorker(ChronosWorker):
    """A worker whose horses can reach neither its pipe nor its relay: every horse reports
    by itself."""

    def main_work_horse(self, job: Any, queue: Any) -> None:
        if self._chronos_plan is not None:
            self._chronos_plan.channel.capacity = 8
            self._chronos_plan.relay = -1  # nor to the relay
        super().main_work_horse(job, queue)


class ChattyParentWorker(ChronosWorker):
    """A worker that prints in the parent around every horse: none of it is a job's output."""

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        print(f"parent: forking for {job.id}")
        super().fork_work_horse(job, queue)

    def monitor_work_horse(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().monitor_work_horse(job, queue, *args, **kwargs)
        finally:
            # Once collected, the job object is the parent's own again and the worker's
            # `HorseCall` holds nothing of it (it would keep the last job alive).
            call = self._chronos_call
            released = "perform" not in vars(job) and (call is None or call.job is None)
            print(f"parent: collected {job.id}, released: {released}", file=sys.stderr)
