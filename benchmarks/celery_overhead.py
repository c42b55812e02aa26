"""Throughput of a solo Celery worker running no-op tasks: bare, with Chronos, and with peers.

    .venv/bin/python benchmarks/celery_overhead.py [--block 200] [--groups 30]

Needs Redis on 127.0.0.1:6379 (database 15, which no test uses). On a shared machine one
worker's rate drifts by ±20 % within seconds, more than the few percent being measured; so
every configuration is measured against bare blocks run by the same worker, interleaved with
its own:

- one worker process per configuration (sentry-sdk's Celery integration cannot be removed
  once set up, and each peer keeps state of its own);
- the queue holds groups of four blocks of `--block` tasks, in the order off, on, on, off
  (a linear drift then weighs on both halves alike), with a control task before each block
  that switches the instrumentation on or off and, at the end of an `on` block, flushes what
  the instrumentation still holds (the flush is timed and counted in that block: work left
  to a background thread must not be paid by the next bare block);
- a block's time runs from the start of its first task to the end of its last (publishing is
  not counted), and each group gives one ratio, (the two off blocks' time) / (the two on
  blocks' time): its tasks/s relative to bare. The mean of the groups' ratios is printed with
  a 95 % interval (mean ± 1.96 standard errors), and the median.

The configurations, each exporting over loopback HTTP to a sink in a process of its own, as a
real backend would:

- chronos: `instrument(app)` with a `BatchExporter` sending to the sink (switched off and on
  with `uninstrument(app)` and `instrument(app)`);
- chronos-hooks: the same with a sink that drops events (and deferred runs, as the exporter
  takes them): the signal receivers alone, without the exporter's queue and thread;
- sentry: `sentry_sdk.init(integrations=[CeleryIntegration()], traces_sample_rate=1.0)`,
  switched off by giving the global scope no client (its patched tracer then only checks for
  the integration and calls the task: the off blocks keep that check, so sentry's figure is,
  if anything, a little lower than its real overhead);
- otel: `CeleryInstrumentor` with a `BatchSpanProcessor` and the OTLP/HTTP exporter,
  switched with its own `uninstrument()` / `instrument()`.

With `--instructions` it also counts, with valgrind's callgrind, the instructions a task costs
bare, with Chronos's hooks alone and with Chronos (every thread of the worker process, the
exporter's included): a count that other load on the machine does not change. Each count is
the difference between a run of `--count-tasks` tasks and a run of three times as many (the
start-up and shutdown cancel out), divided by the difference in tasks; the tasks are
published by a process outside valgrind. Under valgrind a task takes ~50 times as long, so the
exporter's flush interval is raised to keep its batches full (500 events) as they are at full
speed, and it is flushed before the process exits (counted).

A peer that is not installed is skipped with a message (they are dev-only dependencies:
`sentry-sdk`, `opentelemetry-instrumentation-celery`, `opentelemetry-exporter-otlp-proto-http`).
Target: Chronos at most 3 % below bare, and below both peers' overhead.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BROKER = "redis://127.0.0.1:6379/15"
MODES = ("chronos", "chronos-hooks", "sentry", "otel")
TARGET = 0.03
# Blocks run before the measured groups (imports, first connections, caches), not counted.
WARMUP_BLOCKS = 4
# Off, on, on, off: the order of the four blocks of every group.
PATTERN = (False, True, True, False)


class _NullSink:
    """Takes events and drops them: the integration's own cost, without the exporter's.

    It takes deferred runs as `BatchExporter` does, so the task's thread does what it does
    with the real exporter; the difference between chronos and chronos-hooks is then the
    exporter's (its queue and its thread).
    """

    def record(self, event: object) -> bool:
        return True

    def record_deferred(self, run: object) -> bool:
        return True


class _Sink(BaseHTTPRequestHandler):
    """Accepts any POST: Chronos batches, Sentry envelopes, OTLP spans.

    HTTP/1.1 with keep-alive, as a real backend (and the Chronos server) speaks: every
    exporter reuses its connection instead of paying a TCP handshake per request.
    """

    protocol_version = "HTTP/1.1"
    # The headers and the body are two writes: without TCP_NODELAY, Nagle's algorithm holds
    # the body back until the client's delayed ACK, 40 ms per request.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps({"success": True, "ingested": 0}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve_sink() -> None:
    """The sink, in a process of its own (as a real backend would be): prints its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


@dataclass
class _Switch:
    """Turns one configuration on and off, and flushes what it holds."""

    on: Callable[[], object]
    off: Callable[[], object]
    flush: Callable[[], object]


def _setup(mode: str, app: Any, sink: str) -> _Switch | str:
    """Install `mode` (on) and return its switch, or a reason to skip it."""
    if mode in ("chronos", "chronos-hooks"):
        from chronos_core import BatchExporter
        from chronos_integrations.celery import instrument, uninstrument

        exporter: Any = (
            BatchExporter(api_key="bench", endpoint=sink) if mode == "chronos" else _NullSink()
        )

        def chronos_on() -> None:
            # `instrument()` before the worker starts, as an app does, stops listening to
            # `task_received` at `worker_init` for a solo pool; a worker already running
            # has sent that signal, so do what it would have done.
            instrument(app, exporter=exporter).tasks.watch_received(False)

        instrument(app, exporter=exporter)
        flush = getattr(exporter, "flush", None)
        return _Switch(chronos_on, lambda: uninstrument(app), flush or (lambda: None))
    if mode == "sentry":
        try:
            import sentry_sdk
            from sentry_sdk.integrations.celery import CeleryIntegration
        except ImportError:
            return "sentry-sdk is not installed (pip install sentry-sdk)"
        port = sink.rsplit(":", 1)[1]
        sentry_sdk.init(
            dsn=f"http://public@127.0.0.1:{port}/1",
            integrations=[CeleryIntegration()],
            traces_sample_rate=1.0,
        )
        scope = sentry_sdk.get_global_scope()
        client = scope.client
        return _Switch(
            lambda: scope.set_client(client),
            lambda: scope.set_client(None),
            lambda: client.flush(timeout=5),
        )
    if mode == "otel":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.celery import CeleryInstrumentor
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            return (
                "OpenTelemetry's Celery instrumentation is not installed (pip install "
                "opentelemetry-instrumentation-celery opentelemetry-exporter-otlp-proto-http)"
            )
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{sink}/v1/traces")))
        instrumentor = CeleryInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        return _Switch(
            lambda: instrumentor.instrument(tracer_provider=provider),
            instrumentor.uninstrument,
            lambda: provider.force_flush(5_000),
        )
    raise ValueError(mode)


def _app(queue: str) -> Any:
    """The benchmark's Celery app, its tasks on `queue` (a solo worker prefetching 64)."""
    from celery import Celery

    app = Celery("bench", broker=BROKER, set_as_current=False)
    app.conf.update(
        task_default_queue=queue, task_ignore_result=True, worker_prefetch_multiplier=64
    )
    return app


def _measure(mode: str, block: int, groups: int, sink: str) -> None:
    """One configuration, in this process: prints its blocks' times as JSON, or a skip."""
    import redis
    from celery.contrib.testing.worker import start_worker

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    app = _app(queue)
    blocks = WARMUP_BLOCKS + 4 * groups
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    flushed: dict[int, float] = {}
    done = threading.Event()
    state = {"on": True}

    @app.task(shared=False, name="bench.noop", ignore_result=True)
    def noop(number: int, index: int) -> None:
        if index == 0:
            first[number] = time.perf_counter()
        elif index == block - 1:
            last[number] = time.perf_counter()

    switch: _Switch | None = None

    @app.task(shared=False, name="bench.switch", ignore_result=True)
    def control(number: int, on: bool) -> None:
        """Before block `number`: end the previous block's work, then switch for this one."""
        assert switch is not None
        if state["on"]:
            # The CPU the process spends on the flush (the flushing thread's work; the task's
            # thread only waits), not its wall time: the wait for the sink's answer overlaps
            # the next tasks in production.
            started = time.process_time()
            switch.flush()
            flushed[number - 1] = time.process_time() - started
        if on and not state["on"]:
            switch.on()
        elif not on and state["on"]:
            switch.off()
        state["on"] = on
        if number == blocks:
            done.set()

    setup = _setup(mode, app, sink)
    if isinstance(setup, str):
        print(json.dumps({"mode": mode, "skipped": setup}))
        return
    switch = setup
    with app.producer_or_acquire() as producer:
        for number in range(blocks + 1):
            on = PATTERN[number % 4] if number < blocks else False
            control.apply_async((number, on), producer=producer)
            for index in range(block if number < blocks else 0):
                noop.apply_async((number, index), producer=producer)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            if not done.wait(60 + blocks * block / 50):
                raise RuntimeError("the worker did not finish the blocks in time")
        times = [
            last[number] - first[number] + flushed.get(number, 0.0)
            for number in range(WARMUP_BLOCKS, blocks)
        ]
        print(json.dumps({"mode": mode, "block": block, "times": times}))
    finally:
        with redis.Redis.from_url(BROKER) as client:
            client.delete(queue)


@dataclass
class _Result:
    mode: str
    bare: float  # median tasks/s of the off blocks
    instrumented: float  # median tasks/s of the on blocks
    ratios: list[float]  # per group: tasks/s on / tasks/s off

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ratios)

    @property
    def half_width(self) -> float:
        """Half the 95 % interval of the mean ratio (normal approximation)."""
        return 1.96 * statistics.stdev(self.ratios) / math.sqrt(len(self.ratios))


def _result(mode: str, block: int, times: list[float]) -> _Result:
    ratios: list[float] = []
    off: list[float] = []
    on: list[float] = []
    for start in range(0, len(times) - 3, 4):
        group = times[start : start + 4]
        off_time = group[0] + group[3]
        on_time = group[1] + group[2]
        ratios.append(off_time / on_time)
        off += [block / group[0], block / group[3]]
        on += [block / group[1], block / group[2]]
    return _Result(mode, statistics.median(off), statistics.median(on), ratios)


def _publish(queue: str, tasks: int) -> None:
    """Publish `tasks` no-op tasks on `queue` (for a counted run, from outside valgrind)."""

    app = _app(queue)

    @app.task(shared=False, name="bench.noop", ignore_result=True)
    def noop(number: int, index: int) -> None:
        pass

    with app.producer_or_acquire() as producer:
        for index in range(tasks):
            noop.apply_async((0, index), producer=producer)


def _counted_run(mode: str, tasks: int, sink: str) -> None:
    """Run `tasks` no-op tasks on a solo worker with `mode` on (or bare), then flush."""
    import redis
    from celery.contrib.testing.worker import start_worker

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, __file__, "--publish", queue, str(tasks)], check=True)
    app = _app(queue)
    done = threading.Event()

    @app.task(shared=False, name="bench.noop", ignore_result=True)
    def noop(number: int, index: int) -> None:
        if index == tasks - 1:
            done.set()

    switch = None
    if mode != "bare":
        import os

        # Full batches, as at full speed (see the module's docstring).
        os.environ["CHRONOS_FLUSH_INTERVAL"] = "3600"
        setup = _setup(mode, app, sink)
        assert not isinstance(setup, str), setup
        switch = setup
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            if not done.wait(3600):
                raise RuntimeError("the worker did not finish the tasks in time")
        if switch is not None:
            switch.flush()
    finally:
        with redis.Redis.from_url(BROKER) as client:
            client.delete(queue)


def _instructions(modes: list[str], tasks: int, sink: str) -> dict[str, float]:
    """Instructions per task of each mode (see the module's docstring), run two at a time."""
    import re
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None:
        print("--instructions: valgrind is not installed, skipped")
        return {}

    def count(mode: str, n: int) -> int:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        command += [sys.executable, __file__, "--count", mode, "--count-tasks", str(n)]
        out = subprocess.run([*command, "--sink", sink], capture_output=True, text=True)
        found = re.findall(r"Collected : (\d+)", out.stderr)
        if out.returncode != 0 or not found:
            raise RuntimeError(f"counting {mode} failed: {out.stderr[-2_000:]}")
        return int(found[-1])

    runs = [(mode, n) for mode in modes for n in (tasks, 3 * tasks)]
    with ThreadPoolExecutor(2) as pool:
        totals = dict(zip(runs, pool.map(lambda run: count(*run), runs), strict=True))
    return {
        mode: (totals[(mode, 3 * tasks)] - totals[(mode, tasks)]) / (2 * tasks) for mode in modes
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--block", type=int, default=200, help="tasks per block")
    parser.add_argument("--groups", type=int, default=30, help="groups of four blocks")
    parser.add_argument("--only", choices=MODES, action="append", help="run these modes only")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions per task (valgrind)"
    )
    parser.add_argument("--count-tasks", type=int, default=400, help=argparse.SUPPRESS)
    parser.add_argument("--count", choices=("bare", *MODES), help=argparse.SUPPRESS)
    parser.add_argument("--publish", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.groups < 2:
        parser.error("--groups must be at least 2 (the interval needs two groups' ratios)")
    if args.serve_sink:
        _serve_sink()
        return
    if args.mode:
        _measure(args.mode, args.block, args.groups, args.sink)
        return
    if args.publish:
        _publish(args.publish[0], int(args.publish[1]))
        return
    if args.count:
        _counted_run(args.count, args.count_tasks, args.sink)
        return
    sink = subprocess.Popen(
        [sys.executable, __file__, "--serve-sink"], stdout=subprocess.PIPE, text=True
    )
    results: list[_Result] = []
    skipped: dict[str, str] = {}
    try:
        assert sink.stdout is not None
        url = sink.stdout.readline().strip()
        for mode in args.only or MODES:
            command = [sys.executable, __file__, "--mode", mode, "--sink", url]
            command += ["--block", str(args.block), "--groups", str(args.groups)]
            out = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=True,
            )
            data = json.loads(out.stdout.strip().splitlines()[-1])
            if "skipped" in data:
                skipped[mode] = data["skipped"]
            else:
                results.append(_result(mode, data["block"], data["times"]))
        counted: dict[str, float] = {}
        if args.instructions:
            counted = _instructions(["bare", "chronos-hooks", "chronos"], args.count_tasks, url)
    finally:
        sink.terminate()
        sink.wait(10)
    _report(args.block, args.groups, results, skipped)
    if counted:
        bare = counted["bare"]
        print(f"instructions per task (callgrind, {args.count_tasks} and three times as many):")
        for mode, per_task in counted.items():
            print(f"{mode:<14} {per_task / 1e6:7.3f} M   {100 * (per_task / bare - 1):+6.2f} %")


def _report(block: int, groups: int, results: list[_Result], skipped: dict[str, str]) -> None:
    print(
        f"no-op tasks on a solo worker: {groups} groups of 4 blocks of {block} tasks per"
        " configuration, each against bare blocks of the same worker"
    )
    print(f"{'':<14} {'bare':>12} {'with it':>12}   tasks/s vs bare: mean [95 % interval]  median")
    for result in results:
        low = result.mean - result.half_width
        high = result.mean + result.half_width
        interval = f"[{100 * (low - 1):+.2f}, {100 * (high - 1):+.2f}]"
        print(
            f"{result.mode:<14} {result.bare:8.0f} t/s {result.instrumented:8.0f} t/s"
            f"   {100 * (result.mean - 1):+6.2f} % {interval}"
            f"  {100 * (statistics.median(result.ratios) - 1):+6.2f} %"
        )
    for mode, reason in skipped.items():
        print(f"{mode:<14} skipped: {reason}")
    chronos = next((r for r in results if r.mode == "chronos"), None)
    if chronos is None:
        return
    low = chronos.mean - chronos.half_width
    verdict = (
        "met"
        if low >= 1 - TARGET
        else "met by the mean only"
        if chronos.mean >= 1 - TARGET
        else "NOT met"
    )
    print(f"target, chronos at most {100 * TARGET:.0f} % below bare (whole interval): {verdict}")
    peers = [r for r in results if r.mode in ("sentry", "otel")]
    for peer in peers:
        ahead = chronos.mean > peer.mean
        print(
            f"chronos vs {peer.mode}: {'less' if ahead else 'MORE'} overhead"
            f" ({100 * (1 - chronos.mean):.2f} % against {100 * (1 - peer.mean):.2f} %)"
        )


if __name__ == "__main__":
    main()
