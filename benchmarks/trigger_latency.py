"""Latency from a trigger's due time to the handler starting, local and server mode.

    .venv/bin/python benchmarks/trigger_latency.py

Local mode: 20 jobs on a per-second cron for a few seconds, on the real clock; the latency
of a run is its `startedAt` (taken just before the handler is called) minus its
`scheduledFor`. Baseline, measured in the same run: how late a bare `Event.wait()` wakes up
for the same due times (the floor for any sleeping scheduler).

Server mode: the loopback Socket.IO server of the tests sends `job:trigger` with
`scheduledFor` = the moment it sends; latency as above (ms precision on the wire).
Baseline: a bare python-socketio client receiving the same event with no runner behind it.

Scheduler mode: the real server (embedded store, real clock) schedules `SCHEDULER_JOBS`
per-second cron jobs and delivers each due time to a server-mode runner; latency as above,
from the cron due time to the handler starting (scheduler wake-up, claim in SQLite, Socket.IO
round trip, runner admission). Baseline: a bare `Event.wait()` for the same due times.

Targets (loopback): p99 <= 100 ms local, <= 250 ms server (both server rows).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chronos_core import BatchExporter, ExecutionEvent
from chronos_core._models import format_timestamp
from chronos_core.runner import ChronosRunner
from tests.core.runner.trigger_server import TriggerServer

LOCAL_JOBS = 20
LOCAL_SECONDS = 5
SERVER_TRIGGERS = 300
SCHEDULER_JOBS = 10
SCHEDULER_SECONDS = 10


class _Keep(BatchExporter):
    def __init__(self) -> None:
        super().__init__(disabled=True)
        self.events: list[ExecutionEvent] = []

    def record(self, event: ExecutionEvent) -> bool:
        if event.status.is_final:
            self.events.append(event)
        return True


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _latencies_ms(events: list[ExecutionEvent]) -> list[float]:
    return [
        (e.started_at - e.scheduled_for).total_seconds() * 1000
        for e in events
        if e.scheduled_for is not None
    ]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def _report(name: str, samples: list[float], baseline: list[float], target: float) -> None:
    p50, p99 = _percentiles(samples)
    b50, b99 = _percentiles(baseline)
    verdict = "ok" if p99 <= target else "OVER TARGET"
    print(
        f"{name:7} n={len(samples):4}  p50={p50:7.2f} ms  p99={p99:7.2f} ms  "
        f"(baseline p50={b50:6.2f} p99={b99:6.2f} ms; p99 ratio {p99 / max(b99, 0.01):5.1f}x)  "
        f"target p99<={target:g} ms: {verdict}"
    )


def local_mode() -> tuple[list[float], list[float]]:
    exporter = _Keep()
    runner = ChronosRunner(exporter=exporter, capture_console=True)
    for n in range(LOCAL_JOBS):
        runner.register(f"bench-{n}", lambda: None, schedule="* * * * * *")  # every second
    runner.start()
    baseline: list[float] = []
    wake = threading.Event()
    end = time.time() + LOCAL_SECONDS + 1
    while time.time() < end:
        due = int(time.time()) + 1
        wake.wait(due - time.time())
        baseline.append((time.time() - due) * 1000)
    runner.stop(5)
    return _latencies_ms(exporter.events), baseline


def server_mode() -> tuple[list[float], list[float]]:
    server = TriggerServer().start()
    exporter = _Keep()
    runner = ChronosRunner(
        mode="server", api_key=server.api_key, endpoint=server.url, exporter=exporter
    )
    runner.register("bench", lambda: None, overlap="allow")
    runner.start()
    server.wait_for(lambda: bool(server.joins), timeout=20)
    sid = server.runners_of("bench")[0]

    raw = socketio.Client(reconnection=False, handle_sigint=False)
    baseline: list[float] = []
    raw.on("bench:ping", lambda data: baseline.append(
        (datetime.now(UTC) - _parse(data["scheduledFor"])).total_seconds() * 1000
    ))  # fmt: skip
    raw.connect(server.url, headers={"x-api-key": server.api_key}, wait_timeout=10)
    raw_sid = server.connects[-1]["sid"]

    async def fire(event: str, to: str, n: int) -> None:
        assert server.sio is not None
        payload = {"jobId": "bench", "triggerId": f"{event}-{n}"}
        payload["scheduledFor"] = format_timestamp(datetime.now(UTC))
        await server.sio.emit(event, payload, to=to)

    for n in range(SERVER_TRIGGERS):
        server.call(fire("job:trigger", sid, n))
        server.call(fire("bench:ping", raw_sid, n))
        time.sleep(0.01)
    deadline = time.monotonic() + 20
    while len(exporter.events) < SERVER_TRIGGERS and time.monotonic() < deadline:
        time.sleep(0.05)
    raw.disconnect()
    runner.stop(5)
    server.stop()
    return _latencies_ms(exporter.events), baseline


def _sleep_baseline(seconds: float) -> list[float]:
    baseline: list[float] = []
    wake = threading.Event()
    end = time.time() + seconds
    while time.time() < end:
        due = int(time.time()) + 1
        wake.wait(due - time.time())
        baseline.append((time.time() - due) * 1000)
    return baseline


def scheduler_mode() -> tuple[list[float], list[float]]:
    import httpx

    from tests.support.live_server import ThreadedServer

    with tempfile.TemporaryDirectory() as tmp:
        server = ThreadedServer(Path(tmp) / "chronos.db", scheduler_refresh_seconds=0.2).start()
        jobs = [
            {"id": f"tick-{n}", "name": f"tick {n}", "schedule": "* * * * * *", "source": "runner"}
            for n in range(SCHEDULER_JOBS)
        ]
        httpx.post(
            server.url + "/api/ingest/jobs/register",
            json={"jobs": jobs},
            headers={"x-api-key": server.api_key},
        ).raise_for_status()
        exporter = _Keep()
        runner = ChronosRunner(
            mode="server", api_key=server.api_key, endpoint=server.url, exporter=exporter
        )
        for job in jobs:
            runner.register(job["id"], lambda: None, overlap="allow")
        runner.start()
        time.sleep(1.5)  # connected, joined, planned
        exporter.events.clear()
        baseline = _sleep_baseline(SCHEDULER_SECONDS)
        runner.stop(5)
        server.stop()
    return _latencies_ms(exporter.events), baseline


def main() -> None:
    local, local_base = local_mode()
    _report("local", local, local_base, 100)
    server, server_base = server_mode()
    _report("server", server, server_base, 250)
    scheduled, scheduled_base = scheduler_mode()
    _report("sched", scheduled, scheduled_base, 250)


if __name__ == "__main__":
    main()
