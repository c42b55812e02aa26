"""What the SDK costs the job that calls it, against an OpenTelemetry span as the peer.

Measured in one run, so the figures share the machine's mood:

- `record()`: one event onto the exporter's queue;
- a whole captured run (start, finish, event, record) without console capture, and with it;
- an OpenTelemetry SDK span start/end with a BatchSpanProcessor, the peer.

The exporter's thread sends to a loopback sink that acknowledges everything, as a server
would. Prints medians of per-operation cost and their ratio to the OpenTelemetry span.

    python benchmarks/sdk_overhead.py [--rounds 15] [--ops 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chronos_core import BatchExporter, ExecutionEvent, ExecutionStatus, capture


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"success": True, "ingested": 0}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _median_cost(operation: Callable[[], object], ops: int, rounds: int) -> float:
    """Median over `rounds` of the mean cost of one operation, in microseconds."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(ops):
            operation()
        samples.append((time.perf_counter_ns() - started) / ops / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    exporter = BatchExporter(
        api_key="bench",
        endpoint=f"http://127.0.0.1:{sink.server_address[1]}",
        max_queue_size=1_000_000,
        max_batch_size=1000,
    )
    event = ExecutionEvent(
        exec_id="bench:1",
        job_id="bench",
        status=ExecutionStatus.SUCCESS,
        started_at=datetime.now(UTC),
        duration_ms=1.0,
    )

    def captured_run() -> None:
        with capture("bench", sink=exporter):
            pass

    def captured_run_console() -> None:
        with capture("bench", sink=exporter, capture_console=True):
            pass

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class _DiscardSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DiscardSpans(), max_queue_size=1_000_000))
    tracer = provider.get_tracer("bench")

    def otel_span() -> None:
        with tracer.start_as_current_span("bench"):
            pass

    cases: list[tuple[str, Callable[[], object]]] = [
        ("otel span start/end (BatchSpanProcessor)", otel_span),
        ("record()", lambda: exporter.record(event)),
        ("captured run, no console capture", captured_run),
        ("captured run, console capture", captured_run_console),
    ]
    for _, operation in cases:  # warm up imports, caches and threads
        _median_cost(operation, 200, 1)
    results = {name: _median_cost(op, args.ops, args.rounds) for name, op in cases}
    baseline = results[cases[0][0]]
    print(f"{'case':45} {'median µs':>10} {'vs otel span':>12}")
    for name, cost in results.items():
        print(f"{name:45} {cost:10.2f} {cost / baseline:12.2f}")
    exporter.shutdown(5)
    provider.shutdown()
    stats = exporter.stats()
    print(f"exporter: sent={stats.sent} dropped={stats.dropped}")
    sink.shutdown()


if __name__ == "__main__":
    main()
