"""Time added to each APScheduler run by `instrument()`, against bare runs in the same process.

    .venv/bin/python benchmarks/apscheduler_overhead.py

Runs a no-op job many times through a real scheduler's executor path (`submit_job` →
`run_job` → the executed event dispatched to listeners), on APScheduler's `DebugExecutor`
so that the run happens on this thread and thread-pool scheduling noise stays out of the
measurement. Bare and instrumented schedulers alternate rounds; the best round of each is
kept. The instrumented side records into a real `BatchExporter` (its queue; the sending
thread is not woken during a round). Target: at most 25 µs added per run.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from chronos_core import BatchExporter
from chronos_integrations.apscheduler import instrument

# Fewer runs per round than the exporter's batch size, so its sending thread is never woken
# while a round is measured (each round gets a fresh exporter and scheduler).
RUNS = 900
ROUNDS = 40
TARGET_US = 25.0


def noop() -> int:
    return 1


def make_scheduler() -> tuple[BackgroundScheduler, Any, Any]:
    scheduler = BackgroundScheduler(timezone="UTC", executors={"default": DebugExecutor()})
    scheduler.start(paused=True)
    # No misfire grace limit: every submitted run really runs, however long the round takes.
    job = scheduler.add_job(noop, "interval", hours=1, id="noop", misfire_grace_time=None)
    executor = scheduler._lookup_executor("default")
    return scheduler, executor, job


def per_run_us(executor: Any, job: Any) -> float:
    started = time.perf_counter()
    for _ in range(RUNS):
        executor.submit_job(job, [datetime.now(UTC)])
    return (time.perf_counter() - started) / RUNS * 1e6


def main() -> None:
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("chronos_core").setLevel(logging.ERROR)
    bare: list[float] = []
    measured: list[float] = []
    queued = 0
    for _ in range(ROUNDS):
        scheduler, executor, job = make_scheduler()
        bare.append(per_run_us(executor, job))
        scheduler.shutdown(wait=False)

        exporter = BatchExporter(
            api_key="benchmark",
            endpoint="http://127.0.0.1:9",
            max_batch_size=1_000,
            flush_interval=3600,
        )
        scheduler, executor, job = make_scheduler()
        instrument(scheduler, exporter, register=False)
        measured.append(per_run_us(executor, job))
        queued += exporter.stats().queued
        scheduler.shutdown(wait=False)
        exporter.shutdown(0)
    bare_us, chronos_us = min(bare), min(measured)
    added = chronos_us - bare_us
    print(f"runs per round: {RUNS}, rounds: {ROUNDS} (best round of each kept)")
    print(f"bare:         {bare_us:8.1f} µs/run  ({1e6 / bare_us:,.0f} runs/s)")
    print(f"with Chronos: {chronos_us:8.1f} µs/run  ({1e6 / chronos_us:,.0f} runs/s)")
    verdict = "met" if added <= TARGET_US else "NOT met"
    print(
        f"added:        {added:8.1f} µs/run  (ratio {chronos_us / bare_us:.2f}x; "
        f"target <= {TARGET_US:.0f} µs: {verdict})"
    )
    print(f"events recorded: {queued} of {RUNS * ROUNDS}")


if __name__ == "__main__":
    main()
