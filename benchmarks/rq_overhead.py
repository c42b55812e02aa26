"""RQ jobs/s with a bare forking `Worker` and with `ChronosWorker`, paired in the same run.

    .venv/bin/python benchmarks/rq_overhead.py              # ~3-5 min; Redis on 127.0.0.1:6379
    .venv/bin/python benchmarks/rq_overhead.py --quick      # ~1 min, a wider interval
    .venv/bin/python benchmarks/rq_overhead.py --groups 128 # ~15-20 min, +-1 % or better

Target: `ChronosWorker` drains at most 2 % fewer jobs/s than a bare `Worker`.

Method. On a shared machine the load drifts by tens of percent over minutes, so a few long
rounds per worker cannot resolve 2 %. Instead the two workers drain many short blocks of the
same no-op jobs (`os.getpid`, one fork per job, as in production), alternating in groups of
four blocks, ABBA (bare, Chronos, Chronos, bare) or BAAB, drawn per group: within a group,
drift that is linear in time weighs both workers alike. Each group gives one ratio, the
Chronos pair's jobs/s over the bare pair's; the report is the median and the mean of those
ratios with a 95 % interval (mean ± t·SD/√n, and a bootstrap interval of the median). The
verdict is judged on the interval of the mean: PASS when all of it is within the target, NOT
MET when all of it is beyond, UNDECIDED when it straddles the target. The interval narrows as
1/√groups; when it is too wide the report says how many groups (`--groups`) would give ±1 %.

Each worker class runs in a process of its own (the bare one never imports Chronos, as in
production, so its forks copy no Chronos pages or page tables), with one worker instance
serving each of its blocks (a burst worker can `work()` again: its death was registered, so its
birth can be too). What a forked horse copies depends on where the worker's objects lie, which
follows everything the process imported before them: a process measures one heap layout, and
the same code cost a dozen page faults per job more or less from one layout to the next (see
`_layout`). So each group runs in a new pair of processes, each given a random layout of its
own (a random subset of the standard library imported and random objects allocated before RQ
is imported), and warmed up with `WARM_UP` untimed jobs: the mean over the groups is the mean
over layouts, and its interval includes their spread. `--one-layout` keeps one pair of
processes, in the script's own layout, for the whole run (warmed up with a whole group).

One block: the worker's process fills the queue (Redis database 13, flushed) with `--jobs` + 1
jobs, untimed, and drains it with `work(burst=True)`. The clock is read after each job's
`execute_job` (in a subclass both workers share), so the timed window runs from the end of the
first job to the end of the last, and holds whole cycles of dequeue, fork, wait and RQ's
bookkeeping; worker start and stop (RQ's birth and death, and `ChronosWorker`'s relay start
and cron registration) are left out.

Chronos's modules are compiled to bytecode first (`_bytecode`), as a wheel install leaves
them: a checkout under `PYTHONDONTWRITEBYTECODE=1` would otherwise compile them in each worker
process, whose heap keeps the compiler's leftovers (some 2 MB, and a larger fork per job).

The Chronos worker exports from its relay process (`--in-process`: from a `BatchExporter` in
the worker itself), with the exporter's default settings (a batch every 2 s, sooner when 500
events wait) and console capture on (`--no-console`: off); it sends to a sink in a process of
its own that acknowledges everything, as a server would. A worker process keeps one relay
for its life, as a production worker does in its one `work()`: `ChronosWorker.work()` would
start a relay for each block and stop it at the block's end, so that each block's jobs and
flush would be those of a new relay process (its code cold, its first request to the sink),
which made the flush cost some 6 ms of CPU instead of some 3.5, and the relay some 20 µs per
job instead of some 13 (runs before 2026-11-30's evening were measured so).

So that no exporter work of a Chronos block spills into the next bare block, each Chronos block
is followed by a flush (the relay's, whose answer the worker waits for). In production nobody
waits for it: the relay sends while the next jobs run. The block's time counts the CPU the
flush took (the relay's threads, from the scheduler's account, and the worker process's) as if
the worker had spent it between two jobs, and not the rest of the wait (the sink's own work,
and the hand-offs between processes); the report also gives the figure with the whole wait
counted, an upper bound, which is how runs before 2026-11-30 counted it.

Per job, from the same blocks: page faults and CPU time of the work horse (RQ's `os.wait4`),
of the worker process (`getrusage` across the window, an exporter thread included), and CPU
time of the relay across the window (`/proc/<pid>/task/*/schedstat`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar

from _bytecode import compile_chronos
from _drain import NO_OP_JOB
from _layout import perturb

if TYPE_CHECKING:
    from chronos_core import BatchExporter

REDIS_URL = "redis://127.0.0.1:6379/13"
JOBS_PER_BLOCK = 80
GROUPS = 32
QUICK_GROUPS = 8
# Untimed jobs a new worker process runs before its first timed block.
WARM_UP = 20
TARGET = 0.02
# Z for a two-sided 95 % interval (turned into Student's t for the groups run, see `_t95`);
# bootstrap resamples of the median.
Z95 = 1.96
RESAMPLES = 10_000
BARE, CHRONOS = "bare", "chronos"
ABBA = (BARE, CHRONOS, CHRONOS, BARE)
BAAB = (CHRONOS, BARE, BARE, CHRONOS)


@dataclass
class Block:
    """One block's figures: `jobs` timed jobs in `seconds`, with per-job resource use."""

    kind: str
    jobs: int
    seconds: float
    flush_seconds: float
    flush_cpu: float
    horse_faults: float
    horse_cpu: float
    parent_faults: float
    parent_cpu: float
    relay_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    @property
    def counted(self) -> float:
        """The block's time as the verdict counts it: the jobs, and the CPU its flush took."""
        return self.seconds + self.flush_cpu

    @property
    def waited(self) -> float:
        """The block's time with the whole wait for its flush counted (an upper bound)."""
        return self.seconds + self.flush_seconds


class TimedWorkerMixin:
    """Reads the clock after each job and collects the horses' rusage; both workers use it."""

    block_jobs: int = 0
    marks: list[int]
    parent_usage: list[resource.struct_rusage]
    horse_usage: list[Any]
    flush_seconds: float = 0.0
    flush_cpu: float = 0.0
    # What must be sent before the window closes (the Chronos worker's exporter, in process).
    bench_exporter: ClassVar[BatchExporter | None] = None
    # Events the sink acknowledged, as the worker process's one relay counted them.
    relayed_sent: int = 0

    def start_block(self, jobs: int) -> None:
        self.block_jobs = jobs
        self.marks = []
        self.parent_usage = []
        self.horse_usage = []
        self.relay_ns: list[int] = []
        self.flush_seconds = self.flush_cpu = 0.0

    def execute_job(self, job: Any, queue: Any) -> Any:
        result = super().execute_job(job, queue)  # type: ignore[misc]
        self.marks.append(time.perf_counter_ns())
        done = len(self.marks)
        if done in (1, self.block_jobs):
            self.parent_usage.append(resource.getrusage(resource.RUSAGE_SELF))
            self.relay_ns.append(self._relay_ns())
        if done == self.block_jobs:
            # After the window: the wait, and the CPU the flush took in the relay and here.
            cpu = self.relay_ns[-1] / 1e9 + time.process_time()
            started = time.perf_counter()
            self.flush()
            self.flush_seconds = time.perf_counter() - started
            self.flush_cpu = self._relay_ns() / 1e9 + time.process_time() - cpu
        return result

    def _relay_ns(self) -> int:
        """CPU time of the Chronos worker's relay process so far (all its threads), in
        nanoseconds, from the scheduler's own account (`/proc/<pid>/task/*/schedstat`)."""
        link = getattr(self, "_chronos_link", None)
        if link is None:
            return 0
        total = 0
        tasks = f"/proc/{link.process.pid}/task"
        for task in os.listdir(tasks):
            try:
                with open(f"{tasks}/{task}/schedstat") as schedstat:
                    total += int(schedstat.read().split()[0])
            except FileNotFoundError:
                pass  # a thread that just ended
        return total

    def flush(self) -> None:
        """Everything Chronos holds sent and acknowledged (nothing for the bare worker)."""
        if self.bench_exporter is not None:
            self.bench_exporter.flush(30)
        link = getattr(self, "_chronos_link", None)
        if link is not None:
            assert link.flush(30), "the relay did not deliver everything"
            self.relayed_sent = link.stats["sent"]  # one relay for the process's life

    def wait_for_horse(self) -> Any:
        pid, status, usage = super().wait_for_horse()  # type: ignore[misc]
        if usage is not None and len(self.marks) >= 1:  # not the warm-up job's horse
            self.horse_usage.append(usage)
        return pid, status, usage

    def block(self, kind: str) -> Block:
        jobs = len(self.marks) - 1
        assert jobs == self.block_jobs - 1, "not every job was timed"
        assert len(self.horse_usage) == jobs, "a horse's rusage went missing"
        first, last = self.parent_usage
        return Block(
            kind=kind,
            jobs=jobs,
            seconds=(self.marks[-1] - self.marks[0]) / 1e9,
            flush_seconds=self.flush_seconds,
            flush_cpu=self.flush_cpu,
            horse_faults=sum(u.ru_minflt + u.ru_majflt for u in self.horse_usage) / jobs,
            horse_cpu=sum(u.ru_utime + u.ru_stime for u in self.horse_usage) / jobs,
            parent_faults=(last.ru_minflt - first.ru_minflt) / jobs,
            parent_cpu=(last.ru_utime + last.ru_stime - first.ru_utime - first.ru_stime) / jobs,
            relay_cpu=(self.relay_ns[-1] - self.relay_ns[0]) / 1e9 / jobs,
        )


def timed_worker(
    kind: str, endpoint: str, console: bool, preload: bool, in_process: bool
) -> TimedWorkerMixin:
    """The worker for `kind`; a bare worker's process imports Chronos only with `preload`.
    The Chronos worker exports from its relay process, or with `in_process` from its own."""
    from redis import Redis
    from rq import Worker

    connection = Redis.from_url(REDIS_URL)
    if kind == BARE:
        if preload:
            import chronos_integrations.rq  # noqa: F401

        class BareWorker(TimedWorkerMixin, Worker):
            """RQ's forking `Worker`, timed."""

        return BareWorker(["bench"], connection=connection)

    from chronos_integrations.rq import ChronosWorker

    if not in_process:
        # The relay process reads the same environment as the worker's shared exporter.
        os.environ.update(
            CHRONOS_API_KEY="benchmark",
            CHRONOS_API_URL=endpoint,
            CHRONOS_CAPTURE_CONSOLE=str(console).lower(),
        )

        class ChronosBenchWorker(TimedWorkerMixin, ChronosWorker):
            """`ChronosWorker`, timed, flushing its relay at the end of each block, with one
            relay for the process's life."""

            def work(self, *args: Any, **kwargs: Any) -> Any:
                # `ChronosWorker.work()` starts a relay and stops it when it returns, as a
                # production worker does once, in its one `work()`. Here each block is a
                # `work()` of its own: a relay per block would make each block's jobs and
                # flush those of a new process (its code cold, its first request). So the
                # set-up (the relay started) is made once, and RQ's `work()` runs each block.
                # `serve` stops it at the process's end.
                self._chronos()
                return Worker.work(self, *args, **kwargs)

        return ChronosBenchWorker(["bench"], connection=connection)

    from chronos_core import BatchExporter

    exporter = BatchExporter(api_key="benchmark", endpoint=endpoint, capture_console=console)

    class InProcessBenchWorker(TimedWorkerMixin, ChronosWorker):
        """`ChronosWorker` exporting from its own process, timed, flushing its exporter at
        the end of each block."""

        chronos_exporter = exporter
        bench_exporter = exporter

    return InProcessBenchWorker(["bench"], connection=connection)


def run_block(worker: TimedWorkerMixin, kind: str, jobs: int) -> Block:
    from rq import Queue, Worker

    assert isinstance(worker, Worker)
    connection = worker.connection
    connection.flushdb()
    queue = Queue("bench", connection=connection)
    with connection.pipeline() as pipe:
        for _ in range(jobs + 1):
            queue.enqueue(NO_OP_JOB, pipeline=pipe)
        pipe.execute()
    worker.start_block(jobs + 1)
    worker.work(burst=True, logging_level="WARNING")
    assert queue.finished_job_registry.count == jobs + 1, "not every job finished"
    return worker.block(kind)


SINK = """
import http.server, json
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"success": True, "ingested": 0}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def serve(
    kind: str, endpoint: str, console: bool, preload: bool, in_process: bool, layout: int
) -> None:
    """A worker's process: one block per line read (its size), its figures written back."""
    described = perturb(layout)  # before RQ (and Chronos) are imported
    logging.getLogger("rq").setLevel(logging.WARNING)
    logging.getLogger("chronos_core").setLevel(logging.ERROR)
    worker = timed_worker(kind, endpoint, console, preload, in_process)
    for line in sys.stdin:
        block = run_block(worker, kind, int(line))
        print(json.dumps(dataclasses.asdict(block)), flush=True)
    end: dict[str, Any] = {
        "chronos_loaded": "chronos_core" in sys.modules,
        "exporter_loaded": "chronos_core._exporter" in sys.modules,
        "rss_mb": _rss_kib() / 1024,
        "sent": worker.relayed_sent,
        "layout": described,
    }
    stop = getattr(worker, "_chronos_stop", None)
    if stop is not None:
        stop()  # `ChronosWorker`'s set-up, the relay included (it sends what it holds)
    exporter = worker.bench_exporter
    if exporter is not None:
        exporter.shutdown(10)
        end["sent"] = exporter.stats().sent
    print(json.dumps(end), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--groups", type=int, default=GROUPS, help="groups of 4 blocks (32)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_GROUPS} groups")
    parser.add_argument("--jobs", type=int, default=JOBS_PER_BLOCK, help="timed jobs per block")
    parser.add_argument("--no-console", action="store_true", help="console capture off")
    parser.add_argument(
        "--preload",
        action="store_true",
        help="the bare worker's process imports Chronos too: the per-job hooks alone",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="the Chronos worker exports from its own process, not from its relay process",
    )
    parser.add_argument(
        "--one-layout",
        action="store_true",
        help="one process per worker for the whole run, in the script's own heap layout"
        " (default: new processes in a random layout for each group)",
    )
    parser.add_argument("--seed", type=int, help="of the layouts and the orders (random)")
    parser.add_argument("--serve", choices=(BARE, CHRONOS), help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--layout", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    console = not args.no_console
    if args.serve:
        serve(args.serve, args.endpoint, console, args.preload, args.in_process, args.layout)
        return
    groups = QUICK_GROUPS if args.quick else args.groups
    if groups < 2 or args.jobs < 2:
        parser.error("at least 2 groups of blocks of at least 2 jobs")
    seed = args.seed if args.seed is not None else random.randrange(1, 1 << 30)
    bytecode = compile_chronos()
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
    command = [sys.executable, __file__, "--endpoint", endpoint]
    command += ["--no-console"] if args.no_console else []
    command += ["--preload"] if args.preload else []
    command += ["--in-process"] if args.in_process else []
    bench = Bench(command, args.jobs)
    try:
        bench.run(groups, seed, one_layout=args.one_layout)
        bench.report(seed, console=console, preload=args.preload, in_process=args.in_process)
        print(bytecode)
    finally:
        bench.stop()
        sink.terminate()
        sink.wait(10)
        from redis import Redis

        Redis.from_url(REDIS_URL).flushdb()


class Bench:
    """The worker processes of a run, the blocks they ran and what they said at their end."""

    def __init__(self, command: list[str], jobs: int) -> None:
        self.command = command
        self.jobs = jobs
        self.workers: dict[str, subprocess.Popen[str]] = {}
        self.results: list[list[Block]] = []
        self.ends: dict[str, list[dict[str, Any]]] = {BARE: [], CHRONOS: []}
        self.chronos_jobs = 0  # every job the Chronos workers ran, warm-ups included
        self.elapsed = 0.0
        self.load = (0.0, 0.0)

    def start(self, layouts: dict[str, int]) -> None:
        """A process for each worker, in its layout."""
        self.workers = {
            kind: subprocess.Popen(
                [*self.command, "--serve", kind, "--layout", str(layouts[kind])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for kind in (BARE, CHRONOS)
        }

    def block(self, kind: str, jobs: int) -> Block:
        stdin, stdout = _pipes(self.workers[kind])
        stdin.write(f"{jobs}\n")
        stdin.flush()
        line = stdout.readline()
        assert line, f"the {kind} worker's process ended"
        if kind == CHRONOS:
            self.chronos_jobs += jobs + 1
        return Block(**json.loads(line))

    def stop(self) -> None:
        """End the worker processes, keeping what each said at its end."""
        workers, self.workers = self.workers, {}
        for kind, process in workers.items():
            stdin, stdout = _pipes(process)
            if process.poll() is None:
                stdin.close()
                line = stdout.readline()
                if line:
                    self.ends[kind].append(json.loads(line))
            process.wait(30)

    def run(self, groups: int, seed: int, *, one_layout: bool) -> None:
        """`groups` groups of four blocks, ABBA or BAAB drawn per group: a load that comes
        and goes with the period of a group would otherwise fall on the same worker every
        time. Each group in new processes of random layouts (`_layout`), or all of them in
        one pair of processes in the script's layout (warmed up with a whole group)."""
        rng = random.Random(seed)
        orders = rng.choices((ABBA, BAAB), k=groups)
        self.load = (os.getloadavg()[0], 0.0)
        started = time.monotonic()
        if one_layout:
            self.start({BARE: 0, CHRONOS: 0})
            for kind in ABBA:  # a warm-up group, not kept
                self.block(kind, self.jobs)
        for order in orders:
            if not one_layout:
                self.start({kind: rng.randrange(1, 1 << 30) for kind in (BARE, CHRONOS)})
                for kind in (BARE, CHRONOS):  # a warm-up block each, not kept
                    self.block(kind, WARM_UP)
            self.results.append([self.block(kind, self.jobs) for kind in order])
            # Each group's blocks as it ends, on stderr: what a run cut short had measured.
            blocks = [dataclasses.asdict(block) for block in self.results[-1]]
            print(json.dumps(blocks), file=sys.stderr, flush=True)
            if not one_layout:
                self.stop()
        self.stop()
        self.elapsed = time.monotonic() - started
        self.load = (self.load[0], os.getloadavg()[0])

    def report(self, seed: int, *, console: bool, preload: bool, in_process: bool) -> None:
        layouts = len(self.ends[CHRONOS])
        report(self.results, self.jobs, self.elapsed, self.load)
        sent = sum(end["sent"] for end in self.ends[CHRONOS])
        print(f"events delivered to the sink: {sent} of {self.chronos_jobs}")
        for end in self.ends[BARE]:
            assert end["chronos_loaded"] == preload, "Chronos (not) imported by the bare worker"
        for end in self.ends[CHRONOS]:
            assert end["exporter_loaded"] == in_process, "the exporter in the wrong process"
        bare_mb = statistics.median(end["rss_mb"] for end in self.ends[BARE])
        chronos_mb = statistics.median(end["rss_mb"] for end in self.ends[CHRONOS])
        print(
            f"resident memory of the worker processes (median): bare {bare_mb:.0f} MB"
            f"{' (Chronos imported: --preload)' if preload else ''}, Chronos {chronos_mb:.0f} MB"
        )
        if layouts == 1:
            print("one process per worker for the whole run, in the script's own heap layout")
        else:
            print(
                f"a new pair of worker processes for each group, {layouts} random heap layouts"
                f" per worker (`_layout`), seed {seed}"
            )
        where = "the worker process" if in_process else "its relay process"
        print(
            f"Chronos: exporting from {where}, BatchExporter defaults (a batch every 2 s or 500"
            f" events), console capture {'on' if console else 'off'}, flushed after each Chronos"
            " block (its CPU counted)"
        )


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pipes(process: subprocess.Popen[str]) -> tuple[IO[str], IO[str]]:
    assert process.stdin is not None
    assert process.stdout is not None
    return process.stdin, process.stdout


def report(
    results: list[list[Block]], jobs: int, elapsed: float, load: tuple[float, float]
) -> None:
    def of(kind: str) -> list[Block]:
        return [block for group in results for block in group if block.kind == kind]

    bare, chronos = of(BARE), of(CHRONOS)

    def ratio(group: list[Block], chronos_time: str) -> float:
        bare_time = sum(b.seconds for b in group if b.kind == BARE)
        return bare_time / sum(getattr(b, chronos_time) for b in group if b.kind == CHRONOS)

    ratios = [ratio(group, "counted") for group in results]
    waited = [ratio(group, "waited") for group in results]
    n = len(ratios)
    mean = statistics.fmean(ratios)
    sd = statistics.stdev(ratios)
    half = _t95(n - 1) * sd / n**0.5
    low, high = mean - half, mean + half
    median = statistics.median(ratios)
    rng = random.Random(6)
    medians = sorted(statistics.median(rng.choices(ratios, k=n)) for _ in range(RESAMPLES))
    median_low, median_high = medians[int(0.025 * RESAMPLES)], medians[int(0.975 * RESAMPLES)]

    print(
        f"{n} groups (ABBA/BAAB) of blocks of {jobs} timed jobs, {elapsed:.0f} s;"
        f" load average {load[0]:.2f} before, {load[1]:.2f} after"
    )
    bare_rate = statistics.median(b.rate for b in bare)
    chronos_rate = statistics.median(b.rate for b in chronos)
    print(f"median jobs/s per block: bare {bare_rate:.1f}, Chronos {chronos_rate:.1f}")
    print(
        f"block jobs/s range: bare {min(b.rate for b in bare):.0f}-{max(b.rate for b in bare):.0f},"
        f" Chronos {min(b.rate for b in chronos):.0f}-{max(b.rate for b in chronos):.0f}"
    )
    print("ratio Chronos/bare jobs/s per group (1.000 = no overhead):")
    print(f"  median {median:.4f} (bootstrap 95 % {median_low:.4f}..{median_high:.4f})")
    print(f"  mean   {mean:.4f} (95 % {low:.4f}..{high:.4f}, SD of a group {sd:.4f})")
    print(
        f"  fewer jobs/s with Chronos: {1 - mean:+.2%} (mean;"
        f" 95 % {1 - high:+.2%}..{1 - low:+.2%}), {1 - median:+.2%} (median)"
    )
    print("  per group: " + " ".join(f"{r:.3f}" for r in ratios))
    flush = statistics.median(b.flush_seconds for b in chronos)
    flush_cpu = statistics.median(b.flush_cpu for b in chronos)
    print(
        f"flush after a Chronos block (median): {flush_cpu * 1e3:.1f} ms of CPU, counted in the"
        f" block; {flush * 1e3:.1f} ms waited"
    )
    wait_mean = statistics.fmean(waited)
    wait_half = _t95(n - 1) * statistics.stdev(waited) / n**0.5
    print(
        f"  with the whole wait counted instead (an upper bound): {1 - wait_mean:+.2%} fewer"
        f" jobs/s (95 % {1 - wait_mean - wait_half:+.2%}..{1 - wait_mean + wait_half:+.2%})"
    )

    def per_job(name: str, attribute: str, scale: float, unit: str) -> None:
        b = statistics.median(getattr(block, attribute) for block in bare) * scale
        c = statistics.median(getattr(block, attribute) for block in chronos) * scale
        print(f"  {name:<22}{b:9.0f}{c:10.0f}{c - b:+9.0f} {unit}")

    print(f"per job (median of blocks){'bare':>9}{'Chronos':>10}{'diff':>9}")
    per_job("horse page faults", "horse_faults", 1, "")
    per_job("horse CPU", "horse_cpu", 1e6, "µs")
    per_job("worker page faults", "parent_faults", 1, "")
    per_job("worker CPU", "parent_cpu", 1e6, "µs")
    per_job("relay CPU", "relay_cpu", 1e6, "µs")

    floor = 1 - TARGET
    if low >= floor:
        verdict = "PASS: the whole 95 % interval of the mean ratio is within"
    elif high < floor:
        verdict = "NOT MET: the whole 95 % interval of the mean ratio is beyond"
    else:
        verdict = "UNDECIDED: the 95 % interval of the mean ratio straddles"
    side = "within" if median >= floor else "beyond"
    print(f"target <= {TARGET:.0%} fewer jobs/s: {verdict} it (the median is {side} it)")
    if half > TARGET / 2:
        # The interval narrows as 1/sqrt(groups): what a +-1 % interval would take at this noise.
        needed = (Z95 * sd / (TARGET / 2)) ** 2
        print(f"  the interval is +-{half:.1%}; +-1 % would take about {needed:.0f} groups here")


def _t95(df: int) -> float:
    """Student's t for a two-sided 95 % interval (Cornish-Fisher; within 0.01 from df 5)."""
    z = Z95
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


if __name__ == "__main__":
    main()
