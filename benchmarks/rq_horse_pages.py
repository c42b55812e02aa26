"""Pages an RQ work horse writes, and which of them hold Chronos's objects.

    .venv/bin/python benchmarks/rq_horse_pages.py            # bare, chronos, and imports-only
    .venv/bin/python benchmarks/rq_horse_pages.py --jobs 20 --kind chronos

A forked horse shares its parent's pages until it writes one; each page it writes costs a
page fault and a copy, which is most of what a job costs a forking worker beyond RQ's own
work. This counts them directly: at the end of `perform_job`, the horse reads its page map
(`/proc/self/pagemap`) and counts the writable pages mapped only by itself (bit 56, "exclusively
mapped": copied on write, or new), and the pages among them that hold one of Chronos's
objects (functions, code objects, classes, instances of its modules, found through the
garbage collector), and the horse's page faults so far (`getrusage`). Needs Linux and Redis
on 127.0.0.1:6379 (database 11, flushed).

Compare changes by faults, with `rq_faults.py`: the faults here include this count's own
reading of the page map, which grows with the process. The pages mapped by the horse alone
also include pages the *worker* wrote while the horse lived (the writer gets the copy, the
horse keeps the original, now its own), so that count moves with whatever the worker does
meanwhile (a thread of its waking up, say) even when the horse's own writes do not change.

Kinds: `bare` (RQ's `Worker`), `chronos` (`ChronosWorker` with its relay, console capture on),
`imports` (RQ's `Worker` in a process that imported `chronos_integrations.rq` and never used
it: what the imports alone do to the heap the horses inherit). Each kind runs in a process of
its own; the first job is a warm-up. Prints the median per job of each kind.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import types
from typing import Any

from _bytecode import compile_chronos
from _drain import drain_no_op_jobs

REDIS_URL = "redis://127.0.0.1:6379/11"
PAGE = os.sysconf("SC_PAGE_SIZE")
KINDS = ("bare", "imports", "chronos")
_EXCLUSIVE = 1 << 56
_PRESENT = 1 << 63


def written_pages() -> set[int]:
    """Writable pages mapped by this process alone."""
    pages: set[int] = set()
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
        for line in maps:
            parts = line.split()
            if "w" not in parts[1]:
                continue
            low, high = (int(x, 16) for x in parts[0].split("-"))
            pagemap.seek(low // PAGE * 8)
            data = pagemap.read((high - low) // PAGE * 8)
            for index, (entry,) in enumerate(struct.iter_unpack("<Q", data)):
                if entry & _EXCLUSIVE and entry & _PRESENT:
                    pages.add(low // PAGE + index)
    return pages


def _is_chronos(obj: Any) -> bool:
    if isinstance(obj, types.FunctionType | type):
        module = obj.__module__
    elif isinstance(obj, types.CodeType):
        return "chronos_" in obj.co_filename
    else:
        module = type(obj).__module__
    return module.startswith(("chronos_core", "chronos_integrations"))


def chronos_pages(pages: set[int]) -> int:
    """How many of `pages` hold an object of Chronos's (frozen objects included)."""
    gc.disable()
    gc.unfreeze()
    objects = gc.get_objects()
    objects += [o.__code__ for o in objects if isinstance(o, types.FunctionType)]
    return len({id(o) // PAGE for o in objects if id(o) // PAGE in pages and _is_chronos(o)})


def serve(kind: str, jobs: int, out: str) -> None:
    from rq import Worker

    base: Any = Worker
    if kind == "imports":
        import chronos_integrations.rq  # noqa: F401
    elif kind == "chronos":
        # An endpoint nobody listens on: the relay keeps the runs, which is all this needs.
        os.environ.update(
            CHRONOS_API_KEY="pages",
            CHRONOS_API_URL="http://127.0.0.1:9",
            CHRONOS_CAPTURE_CONSOLE="true",
            CHRONOS_SHUTDOWN_TIMEOUT="0",
        )
        from chronos_integrations.rq import ChronosWorker

        base = ChronosWorker

    class PageCountingWorker(base):  # type: ignore[misc, valid-type]
        def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().perform_job(job, queue, *args, **kwargs)
            finally:
                pages = written_pages()
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                ours = chronos_pages(pages)
                with open(out, "a") as report:
                    report.write(json.dumps([len(pages), ours, faults]) + "\n")

    drain_no_op_jobs(PageCountingWorker, REDIS_URL, "pages", jobs + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--kind", choices=KINDS, action="append")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.jobs, args.out)
        return
    print(compile_chronos())
    print(f"per job, median of {args.jobs} (after a warm-up job)")
    print(f"{'kind':<10}{'pages written':>15}{'of them Chronos':>17}{'faults so far':>15}")
    for kind in args.kind or KINDS:
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as out:
            command = [sys.executable, __file__, "--serve", kind, "--jobs", str(args.jobs)]
            subprocess.run([*command, "--out", out.name], check=True, stderr=subprocess.DEVNULL)
            rows = [json.loads(line) for line in out][1:]
        written, ours, faults = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"{kind:<10}{written:>15.0f}{ours:>17.0f}{faults:>15.0f}")


if __name__ == "__main__":
    main()
