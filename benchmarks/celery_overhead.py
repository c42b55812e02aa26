"""Throughput of a solo Celery worker running no-op tasks: bare, with Chronos, and with peers.

    .venv/bin/python benchmarks/celery_overhead.py [--tasks 3000] [--rounds 5]

Needs Redis on 127.0.0.1:6379 (database 13). Each configuration runs in a fresh subprocess
(sentry-sdk's Celery integration cannot be removed once set up), rounds are interleaved, and
the best round of each is kept; each round's ratio to the bare run of the same round, and
the median of those ratios, are printed too. Every instrumented run exports over loopback
HTTP to a sink that runs in a process of its own, as a real backend would:

- chronos: `instrument(app)` with a `BatchExporter` sending to the sink;
- chronos-hooks: `instrument(app)` with a sink that drops events (and deferred runs, as the
  exporter takes them): the signal receivers and capture alone, without the exporter's
  queue and background thread;
- sentry: `sentry_sdk.init(integrations=[CeleryIntegration()], traces_sample_rate=1.0)`;
- otel: `CeleryInstrumentor` with a `BatchSpanProcessor` and the OTLP/HTTP exporter.

A peer that is not installed is skipped with a message (they are dev-only dependencies:
`sentry-sdk`, `opentelemetry-instrumentation-celery`, `opentelemetry-exporter-otlp-proto-http`).
Tasks/s is measured inside the worker, from the start of the first task after a warm-up to the
end of the last one, so publishing is not counted. Over the same window the benchmark reads the
worker process's CPU time (every thread: the tasks', the exporter's, the peers' senders), which
other load on the machine disturbs less than the rate does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BROKER = "redis://127.0.0.1:6379/13"
WARMUP = 300
MODES = ("bare", "chronos", "chronos-hooks", "sentry", "otel")


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


def _instrument(mode: str, app: Any, sink: str) -> str | None:
    """Set up `mode`; returns a reason to skip it, or None."""
    if mode == "chronos":
        from chronos_core import BatchExporter
        from chronos_integrations.celery import instrument

        instrument(app, exporter=BatchExporter(api_key="bench", endpoint=sink))
    elif mode == "chronos-hooks":
        from chronos_integrations.celery import instrument

        instrument(app, exporter=_NullSink())
    elif mode == "sentry":
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
    elif mode == "otel":
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
        CeleryInstrumentor().instrument(tracer_provider=provider)
    return None


def _measure(mode: str, tasks: int, sink: str) -> None:
    """One configuration, in this process: prints `{"mode", "tasks_per_s"}` or a skip."""
    import redis
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    app = Celery("bench", broker=BROKER, set_as_current=False)
    app.conf.update(
        task_default_queue=queue, task_ignore_result=True, worker_prefetch_multiplier=64
    )
    marks: list[float] = []
    cpu: list[float] = []
    done = threading.Event()

    @app.task(shared=False, name="bench.noop", ignore_result=True)
    def noop(index: int) -> None:
        if index == WARMUP or index == tasks - 1:
            marks.append(time.perf_counter())
            cpu.append(time.process_time())
            if index == tasks - 1:
                done.set()

    skipped = _instrument(mode, app, sink)
    if skipped:
        print(json.dumps({"mode": mode, "skipped": skipped}))
        return
    with app.producer_or_acquire() as producer:
        for index in range(tasks):
            noop.apply_async((index,), producer=producer)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            done.wait(120)
        measured = tasks - 1 - WARMUP
        rate = measured / (marks[1] - marks[0])
        cpu_us = 1e6 * (cpu[1] - cpu[0]) / measured
        print(json.dumps({"mode": mode, "tasks_per_s": rate, "cpu_us": cpu_us}))
    finally:
        with redis.Redis.from_url(BROKER) as client:
            client.delete(queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        _serve_sink()
        return
    if args.mode:
        _measure(args.mode, args.tasks, args.sink)
        return
    sink = subprocess.Popen(
        [sys.executable, __file__, "--serve-sink"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None
        url = sink.stdout.readline().strip()
        best, skipped, paired = _rounds(args.tasks, args.rounds, url)
    finally:
        sink.terminate()
        sink.wait(10)
    _report(args.tasks, args.rounds, best, skipped, paired)


Best = dict[str, tuple[float, float]]  # mode -> (highest tasks/s, lowest CPU us per task)
# mode -> per round, (tasks/s, CPU us per task) relative to bare's in the same round
Paired = dict[str, list[tuple[float, float]]]


def _rounds(tasks: int, rounds: int, sink: str) -> tuple[Best, dict[str, str], Paired]:
    best: Best = {}
    skipped: dict[str, str] = {}
    paired: Paired = {}
    for _ in range(rounds):
        this_round: dict[str, tuple[float, float]] = {}
        for mode in MODES:
            if mode in skipped:
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--mode", mode, "--tasks", str(tasks), "--sink", sink],
                capture_output=True,
                text=True,
                timeout=150,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if "skipped" in result:
                skipped[mode] = result["skipped"]
            else:
                rate, cpu = best.get(mode, (0.0, float("inf")))
                best[mode] = (max(rate, result["tasks_per_s"]), min(cpu, result["cpu_us"]))
                this_round[mode] = (result["tasks_per_s"], result["cpu_us"])
        bare_rate, bare_cpu = this_round["bare"]
        for mode, (rate, cpu) in this_round.items():
            paired.setdefault(mode, []).append((rate / bare_rate, cpu / bare_cpu))
    return best, skipped, paired


def _report(tasks: int, rounds: int, best: Best, skipped: dict[str, str], paired: Paired) -> None:
    bare_rate, bare_cpu = best["bare"]
    print(f"no-op tasks on a solo worker, {tasks} tasks, best of {rounds} rounds")
    print("(CPU: the worker process, all its threads, per task)")
    for mode in MODES:
        if mode in skipped:
            print(f"{mode:<14} skipped: {skipped[mode]}")
        else:
            rate, cpu = best[mode]
            print(
                f"{mode:<14} {rate:7.0f} tasks/s {100 * (rate / bare_rate - 1):+6.1f} % vs bare"
                f"   CPU {cpu:6.0f} us/task {100 * (cpu / bare_cpu - 1):+6.1f} %"
            )
    # Load from other work drifts between rounds: each round's ratio to the bare run next to
    # it, and their median, is less sensitive to that than the best of each column.
    print("each round vs the bare run of the same round (tasks/s, CPU), and the median:")
    for mode in MODES:
        if mode == "bare" or mode not in paired:
            continue
        rates = [rate for rate, _ in paired[mode]]
        cpus = [cpu for _, cpu in paired[mode]]
        rounds_text = " ".join(
            f"{100 * (r - 1):+.1f}/{100 * (c - 1):+.1f}" for r, c in paired[mode]
        )
        print(
            f"{mode:<14} median {100 * (statistics.median(rates) - 1):+6.1f} % tasks/s"
            f" {100 * (statistics.median(cpus) - 1):+6.1f} % CPU   rounds: {rounds_text}"
        )


if __name__ == "__main__":
    main()
