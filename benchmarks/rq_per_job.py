"""What `ChronosWorker` costs per job, in one worker process whose jobs alternate Chronos on
and off.

    .venv/bin/python benchmarks/rq_per_job.py                 # 6 processes, ~40 s
    .venv/bin/python benchmarks/rq_per_job.py --processes 10 --no-console

Both kinds of job share one process, so one heap layout: the difference is the per-job work
of the hooks (planning the run, the horse's timing and report, collecting it), without the
spread that layouts bring to a comparison between processes (`_layout`). "Off": the hooks
run but plan nothing, as for a worker whose Chronos is disabled. What this leaves out is what
the process pays either way: its imports, the hooks' structure, and the relay. Each process
gets a random layout; the report gives each process's medians of on minus off (page faults
of the horse, from RQ's `os.wait4`; page faults and thread CPU time of the worker across
`execute_job`) and their mean. The relay sends to a port nobody listens on: it keeps the
runs, which is all this needs. Needs Redis on 127.0.0.1:6379 (database 9, flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from _bytecode import compile_chronos
from _drain import drain_no_op_jobs
from _layout import perturb

REDIS_URL = "redis://127.0.0.1:6379/9"
WARM_UP = 20


def serve(layout: int, jobs: int, console: bool) -> dict[str, float]:
    """Drain `jobs` no-op jobs, alternately with Chronos on and off; medians of on - off."""
    perturb(layout)
    os.environ.update(
        CHRONOS_API_KEY="per-job",
        CHRONOS_API_URL="http://127.0.0.1:9",
        CHRONOS_CAPTURE_CONSOLE=str(console).lower(),
        CHRONOS_SHUTDOWN_TIMEOUT="0",
    )
    from chronos_integrations.rq import ChronosWorker

    figures: dict[bool, dict[str, list[float]]] = {
        on: {"horse_faults": [], "worker_faults": [], "worker_cpu_us": []} for on in (True, False)
    }

    class AlternatingWorker(ChronosWorker):
        done = 0
        horse_faults = 0

        def execute_job(self, job: Any, queue: Any) -> Any:
            self.done += 1
            on = self.done % 2 == 0
            setup = self._chronos()
            if not on:
                self._chronos_setup, self._chronos_disabled = None, True
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.thread_time_ns()
            try:
                return super().execute_job(job, queue)
            finally:
                cpu = time.thread_time_ns() - started
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
                self._chronos_setup, self._chronos_disabled = setup, False
                if self.done > WARM_UP:
                    kind = figures[on]
                    kind["horse_faults"].append(self.horse_faults)
                    kind["worker_faults"].append(faults)
                    kind["worker_cpu_us"].append(cpu / 1e3)

        def wait_for_horse(self) -> Any:
            pid, status, usage = super().wait_for_horse()
            if usage is not None:
                self.horse_faults = usage.ru_minflt
            return pid, status, usage

    drain_no_op_jobs(AlternatingWorker, REDIS_URL, "per-job", WARM_UP + jobs)
    median = statistics.median
    return {
        name: median(figures[True][name]) - median(figures[False][name]) for name in figures[True]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--processes", type=int, default=6, help="worker processes (6)")
    parser.add_argument("--jobs", type=int, default=400, help="timed jobs per process (400)")
    parser.add_argument("--no-console", action="store_true", help="console capture off")
    parser.add_argument("--seed", type=int, help="of the layouts (random)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        print(json.dumps(serve(args.serve, args.jobs, not args.no_console)))
        return
    print(compile_chronos())
    seed = args.seed if args.seed is not None else random.randrange(1, 1 << 30)
    rng = random.Random(seed)
    rows = []
    print(f"{'layout':>12}{'horse faults':>14}{'worker faults':>15}{'worker CPU':>13}")
    for _ in range(args.processes):
        layout = rng.randrange(1, 1 << 30)
        command = [sys.executable, __file__, "--serve", str(layout), "--jobs", str(args.jobs)]
        command += ["--no-console"] if args.no_console else []
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{layout:>12}{row['horse_faults']:>+14.1f}{row['worker_faults']:>+15.1f}"
            f"{row['worker_cpu_us']:>+10.1f} µs"
        )
    mean = {name: statistics.fmean(row[name] for row in rows) for name in rows[0]}
    print(
        f"{'mean':>12}{mean['horse_faults']:>+14.1f}{mean['worker_faults']:>+15.1f}"
        f"{mean['worker_cpu_us']:>+10.1f} µs"
    )
    print(
        f"per job, Chronos on minus off in the same process (medians of {args.jobs // 2} jobs of"
        f" each), console capture {'off' if args.no_console else 'on'}; layouts seed {seed}"
    )


if __name__ == "__main__":
    main()
