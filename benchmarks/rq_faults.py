"""Page faults per job of an RQ work horse and of its worker: bare, with modules imported, and
`ChronosWorker`, each against a bare worker measured in the same run.

    .venv/bin/python benchmarks/rq_faults.py                      # bare, imports, chronos
    .venv/bin/python benchmarks/rq_faults.py --kind imports --imports colorsys --repeat 5
    .venv/bin/python benchmarks/rq_faults.py --kind chronos --no-console

Page faults are what a forking worker's throughput is mostly paid in (each page a horse
writes is a fault and a copy), and unlike jobs/s they are steady on a shared machine: this is
the figure to compare changes by (`rq_overhead.py` gives the jobs/s). Each kind runs in a
process of its own: a worker drains `--jobs` no-op jobs (`os.getpid`, one fork each) after
20 untimed ones; the horse's faults are RQ's own `os.wait4` figures (its whole life, exit
included), the worker's `getrusage` across the timed jobs. Kinds run interleaved with a bare
worker, `--repeat` times; the report is the median per job of each kind, and of its
difference from the bare run next to it.

Kinds: `bare` (RQ's `Worker`), `imports` (RQ's `Worker` in a process that imported
`--imports`, by default `chronos_integrations.rq`), `chronos` (`ChronosWorker` with its
relay, console capture on unless `--no-console`, sending to a port nobody listens on: the
relay keeps what it cannot send, which is all this needs). Needs Redis on 127.0.0.1:6379
(database 10, flushed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
from typing import Any

from _bytecode import compile_chronos
from _drain import drain_no_op_jobs

REDIS_URL = "redis://127.0.0.1:6379/10"
WARM_UP = 20
KINDS = ("bare", "imports", "chronos")


def serve(kind: str, jobs: int, imports: str, console: bool) -> dict[str, float]:
    """Drain `jobs` no-op jobs (after a warm-up) with a worker of `kind`; faults per job."""
    from rq import Worker

    base: Any = Worker
    if kind == "imports":
        for name in imports.split(","):
            importlib.import_module(name)
    elif kind == "chronos":
        os.environ.update(
            CHRONOS_API_KEY="faults",
            CHRONOS_API_URL="http://127.0.0.1:9",
            CHRONOS_CAPTURE_CONSOLE=str(console).lower(),
            CHRONOS_SHUTDOWN_TIMEOUT="0",
        )
        from chronos_integrations.rq import ChronosWorker

        base = ChronosWorker

    class CountingWorker(base):  # type: ignore[misc, valid-type]
        marks: list[resource.struct_rusage] = []
        horses: list[Any] = []

        def execute_job(self, job: Any, queue: Any) -> Any:
            result = super().execute_job(job, queue)
            self.marks.append(resource.getrusage(resource.RUSAGE_SELF))
            return result

        def wait_for_horse(self) -> Any:
            pid, status, usage = super().wait_for_horse()
            if usage is not None:
                self.horses.append(usage)
            return pid, status, usage

    worker = drain_no_op_jobs(CountingWorker, REDIS_URL, "faults", WARM_UP + jobs)
    first, last = worker.marks[WARM_UP - 1], worker.marks[-1]
    timed = len(worker.marks) - WARM_UP
    horses = worker.horses[WARM_UP:]
    return {
        "horse": statistics.mean(u.ru_minflt + u.ru_majflt for u in horses),
        "worker": (last.ru_minflt - first.ru_minflt) / timed,
    }


def run(kind: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--serve", kind, "--jobs", str(args.jobs)]
    command += ["--imports", args.imports] + (["--no-console"] if args.no_console else [])
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=os.path.dirname(__file__)
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=200, help="timed jobs per run (200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (3)")
    parser.add_argument("--kind", choices=KINDS, action="append", help="(default: all)")
    parser.add_argument("--imports", default="chronos_integrations.rq", help="for `imports`")
    parser.add_argument("--no-console", action="store_true", help="chronos: console capture off")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        print(json.dumps(serve(args.serve, args.jobs, args.imports, not args.no_console)))
        return
    print(compile_chronos())
    kinds = [kind for kind in (args.kind or KINDS) if kind != "bare"]
    rows: dict[str, list[dict[str, float]]] = {kind: [] for kind in ["bare", *kinds]}
    diffs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.repeat):
        bare = run("bare", args)
        rows["bare"].append(bare)
        for kind in kinds:
            figures = run(kind, args)
            rows[kind].append(figures)
            diffs[kind].append({key: figures[key] - bare[key] for key in figures})
    print(f"page faults per job, median of {args.repeat} runs of {args.jobs} jobs")
    print(f"{'kind':<10}{'horse':>9}{'(vs bare)':>11}{'worker':>9}{'(vs bare)':>11}")
    for kind, figures in rows.items():
        line = f"{kind:<10}"
        for key in ("horse", "worker"):
            line += f"{statistics.median(f[key] for f in figures):>9.0f}"
            if kind in diffs:
                line += f"{statistics.median(d[key] for d in diffs[kind]):>+11.0f}"
            else:
                line += f"{'':>11}"
        print(line)
    if "imports" in kinds:
        print(f"imports: {args.imports}")
    if "chronos" in kinds:
        print(f"chronos: console capture {'off' if args.no_console else 'on'}")


if __name__ == "__main__":
    main()
