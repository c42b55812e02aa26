"""RQ jobs/s with a bare forking `Worker` and with `ChronosWorker`, in the same run.

    .venv/bin/python benchmarks/rq_overhead.py        # needs Redis on 127.0.0.1:6379

Each round enqueues the same no-op jobs on a fresh queue (Redis database 13, flushed) and
drains them with `work(burst=True)`: one fork per job, as in production. Rounds of the three
workers alternate; the best round of each is kept. The Chronos worker (console capture on)
times every job in its work horse and hands the outcome to the parent through the pipe; the
parent's exporter sends it to a sink in a process of its own that acknowledges everything, as
a server would. Two exporter settings:

- `default`: the exporter's defaults (a batch every 2 s or 100 events), so batches are made
  and sent while horses run, as in production. The target is judged on this one.
- `sent at the end`: one batch when the round ends (`flush_interval` of an hour, batches of
  1,000), outside the timed work: the cost of the hooks and the pipe alone.

(A burst worker flushes when it ends: against an unreachable server that flush would wait out
its timeout and be counted as per-job cost, hence the sink.) Target: at most 2 % fewer jobs/s.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

from redis import Redis
from rq import Queue, Worker

from chronos_core import BatchExporter
from chronos_integrations.rq import ChronosWorker

REDIS_URL = "redis://127.0.0.1:6379/13"
JOBS = 300
ROUNDS = 6
TARGET = 0.02
SETTINGS: dict[str, dict[str, float]] = {
    "default": {},
    "sent at the end": {"flush_interval": 3600, "max_batch_size": 1_000},
}


# A job the work horse can import (functions of __main__ cannot be enqueued); as cheap as
# a job gets, so the overhead is measured at its largest.
JOB = "os.getpid"


def jobs_per_second(worker_class: type[Worker], connection: Redis) -> float:
    connection.flushdb()
    queue = Queue("bench", connection=connection)
    with connection.pipeline() as pipe:
        for _ in range(JOBS):
            queue.enqueue(JOB, pipeline=pipe)
        pipe.execute()
    worker = worker_class([queue], connection=connection)
    started = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    assert queue.finished_job_registry.count == JOBS, "not every job finished"
    return JOBS / elapsed


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


def main() -> None:
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
    try:
        run(endpoint)
    finally:
        sink.terminate()
        sink.wait(10)


def run(endpoint: str) -> None:
    logging.getLogger("rq").setLevel(logging.WARNING)
    logging.getLogger("chronos_core").setLevel(logging.ERROR)
    connection = Redis.from_url(REDIS_URL)
    bare: list[float] = []
    measured: dict[str, list[float]] = {name: [] for name in SETTINGS}
    recorded = 0
    try:
        for _ in range(ROUNDS):
            bare.append(jobs_per_second(Worker, connection))
            for name, settings in SETTINGS.items():
                exporter = BatchExporter(
                    api_key="benchmark", endpoint=endpoint, capture_console=True, **settings
                )
                chronos_class = type(
                    "BenchWorker", (ChronosWorker,), {"chronos_exporter": exporter}
                )
                measured[name].append(jobs_per_second(chronos_class, connection))
                exporter.shutdown(5)
                recorded += exporter.stats().sent
    finally:
        connection.flushdb()
    best_bare = max(bare)
    print(f"jobs per round: {JOBS}, rounds: {ROUNDS} (best round of each kept)")
    print(f"{'bare Worker':<32}{best_bare:8.1f} jobs/s   rounds: {_rounds(bare)}")
    for name, rates in measured.items():
        best = max(rates)
        slower = 1 - best / best_bare
        print(
            f"{'ChronosWorker, ' + name:<32}{best:8.1f} jobs/s   {slower:+6.1%} vs bare"
            f"   rounds: {_rounds(rates)}"
        )
    slower = 1 - max(measured["default"]) / best_bare
    verdict = "met" if slower <= TARGET else "NOT met"
    print(f"target (default settings): <= {TARGET:.0%} fewer jobs/s: {verdict}")
    print(f"events delivered to the sink: {recorded} of {JOBS * ROUNDS * len(SETTINGS)}")


def _rounds(rates: list[float]) -> str:
    return ", ".join(f"{rate:.0f}" for rate in rates)


if __name__ == "__main__":
    main()
