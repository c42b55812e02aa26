"""The worker's end of its relay, over a real pipe whose other end the test reads (or leaves
unread, as a stuck relay would): frames stay whole, and nothing blocks the worker."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from redis import Redis
from rq import Queue

from chronos_integrations.rq import ChronosWorker, _relay_main
from chronos_integrations.rq._channel import (
    PIPE_BUF,
    decode_frames,
    encode_frame,
    horse_send,
    report_size,
)
from chronos_integrations.rq._relay import MAX_PENDING_BYTES, RelayLink
from tests.support.otel import span_context_attached


class PipeProcess:
    """What `RelayLink` uses of a relay's `Popen`: its stdin is a pipe this test reads."""

    pid = 0

    def __init__(self) -> None:
        self.reader, writer = os.pipe()
        os.set_blocking(self.reader, False)
        self.stdin: Any = os.fdopen(writer, "wb")
        answers, self.answer_writer = os.pipe()  # the relay never answers
        self.stdout: Any = os.fdopen(answers, "rb")

    def poll(self) -> int | None:
        return 0 if self.stdin.closed else None

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def kill(self) -> None:
        pass

    def read(self) -> list[Any]:
        chunks = []
        try:
            while chunk := os.read(self.reader, 1 << 20):
                chunks.append(chunk)
        except BlockingIOError:
            pass
        return decode_frames(b"".join(chunks))


@pytest.fixture
def relay() -> Iterator[tuple[RelayLink, PipeProcess]]:
    process = PipeProcess()
    link = RelayLink(process, {"captureConsole": True, "maxLogBytes": 100})  # type: ignore[arg-type]
    yield link, process
    link.close(timeout=1)
    os.close(process.reader)
    os.close(process.answer_writer)


def test_cron_entries_cross_in_frames_no_other_write_can_split(
    relay: tuple[RelayLink, PipeProcess],
) -> None:
    link, process = relay
    entries = [(f"jobs.job_{n}", f"job {n}", "*/5 * * * *", None, "UTC", "q") for n in range(300)]
    huge = ("jobs.huge", "x" * PIPE_BUF, "* * * * *", None, None, "q")
    link.register_cron([*entries[:150], huge, *entries[150:]])
    frames = process.read()
    assert len(frames) > 1
    assert all(kind == "cron" for kind, _ in frames)
    assert [tuple(e) for _, batch in frames for e in batch] == entries  # the huge one left out
    assert link.idle


def test_a_stuck_relay_never_blocks_the_worker_and_a_half_written_frame_keeps_horses_off(
    relay: tuple[RelayLink, PipeProcess],
) -> None:
    link, process = relay
    payload = b"x" * 3_000
    sent = 0
    while link.idle:
        assert link.send_run(("j",) * 9, None, payload)
        sent += 1
        assert sent < 10_000, "the pipe never filled"
    # The last frame is half written and waits: a horse must not write into the pipe now.
    assert link.dropped == 0
    while link.send_run(("j",) * 9, None, payload):
        sent += 1
        assert sent < 10_000 + MAX_PENDING_BYTES // len(payload), "nothing was ever dropped"
    assert link.dropped == 1  # past the bound: dropped and counted, not blocked
    # The relay catches up: everything kept arrives whole, in order.
    received = process.read()
    link.flush(timeout=0)  # writes what waits; no answer comes
    received += process.read()
    while not link.idle:
        link.flush(timeout=0)
        received += process.read()
    runs = [frame for frame in received if frame[0] == "run"]
    assert len(runs) == sent
    assert all(frame[3] == payload for frame in runs)


def test_a_run_forked_while_the_relay_is_busy_is_forwarded_by_the_worker(
    relay: tuple[RelayLink, PipeProcess], redis: Redis
) -> None:
    # A frame of the worker's waits half written, so the horse may not write to the relay:
    # it reports through the worker's pipe, and the worker forwards the run with its facts.
    link, process = relay
    while link.idle:
        link.send_run(("j",) * 9, None, b"x" * 3_000)
    worker = ChronosWorker([Queue("q", connection=redis)], connection=redis)
    setup = (link, False, 10_000, None)
    worker._chronos_link, worker._chronos_setup = link, setup
    worker._chronos_pipe_size = report_size(10_000)
    job = SimpleNamespace(id="job-1", meta={}, func_name="jobs.add", started_at=None)
    plan = worker._chronos_plan_for(job, Queue("q", connection=redis), setup)
    assert plan.relay == -1
    assert plan.relayed is not None
    outcome = (time.time_ns(), 1_000, os.getpid(), None)
    assert horse_send(plan, outcome)  # as the horse would, through the worker's pipe
    worker._chronos_plan = plan
    worker._chronos_collect(job, None)
    received: list[Any] = []
    while True:
        received += process.read()
        if link.idle:
            break
        link.flush(timeout=0)
    runs = [frame for frame in received if frame[0] == "run" and frame[1][0] == "jobs.add"]
    assert len(runs) == 1
    assert decode_frames(runs[0][3]) == [outcome]
    worker._chronos_channel.close()  # type: ignore[union-attr]


def test_a_plan_reads_the_trace_again_only_when_the_workers_context_changed(
    relay: tuple[RelayLink, PipeProcess], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reading the trace touches OpenTelemetry's objects, a page copy each after every fork:
    # the worker reads it once for as long as its context stays the same.
    from chronos_integrations.rq._channel import HorsePlan

    reads: list[str | None] = []
    trace_of = HorsePlan.trace_of

    def counted(plan: HorsePlan, reported: str | None) -> str | None:
        reads.append(trace := trace_of(plan, reported))
        return trace

    monkeypatch.setattr(HorsePlan, "trace_of", counted)
    link, _ = relay
    worker = ChronosWorker([Queue("q", connection=redis)], connection=redis)
    setup = (link, False, 10_000, None)
    worker._chronos_link, worker._chronos_setup = link, setup
    worker._chronos_pipe_size = report_size(10_000)
    job = SimpleNamespace(id="job-1", meta={}, func_name="jobs.add", started_at=None)
    queue = Queue("q", connection=redis)

    def trace() -> str | None:
        relayed = worker._chronos_plan_for(job, queue, setup).relayed
        assert relayed is not None
        assert relayed[0][0] == "jobs.add"
        return relayed[1]  # type: ignore[no-any-return]

    assert [trace(), trace(), trace()] == [None, None, None]
    assert reads == [None]
    with span_context_attached() as trace_id:
        assert [trace(), trace()] == [trace_id, trace_id]
    assert trace() is None
    assert reads == [None, trace_id, None]
    worker._chronos_channel.close()  # type: ignore[union-attr]


class RecordingExporter:
    """What `_Relay` uses of an exporter: the runs it was handed."""

    def __init__(self) -> None:
        self.runs: list[Any] = []

    def record_deferred(self, run: Any) -> bool:
        self.runs.append(run)
        return True


def test_the_relay_reads_its_pipe_when_woken_or_at_its_poll_not_for_each_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A relay woken by every horse's write would be scheduled for every job, often on the
    # core the worker and its horses take turns on: it reads at its poll interval instead,
    # or at once when the worker wakes it (a flush) or closes its wake-up pipe (stopping).
    monkeypatch.setattr(_relay_main, "POLL_INTERVAL", 60.0)
    exporter = RecordingExporter()
    relay = _relay_main._Relay(exporter, None)
    data_reader, data_writer = os.pipe()
    wake_reader, wake_writer = os.pipe()
    reader = threading.Thread(target=relay.run, args=(data_reader, wake_reader), daemon=True)
    reader.start()
    facts = ("jobs.add", "rq:1:1", 1, "1", "q", "w", (), 100, None)
    report = encode_frame((1, 2, 3, None))
    os.write(data_writer, encode_frame(("run", facts, None, report)))
    time.sleep(0.3)
    assert exporter.runs == []  # written, not yet read: the poll is a minute away
    os.write(wake_writer, b"!")
    deadline = time.monotonic() + 10
    while not exporter.runs and time.monotonic() < deadline:
        time.sleep(0.01)
    [run] = exporter.runs
    assert run.plan.job_id == "jobs.add"
    assert decode_frames(run.payload) == [(1, 2, 3, None)]
    # The worker stops: it closes its wake-up pipe, then its end of the input.
    os.write(data_writer, encode_frame(("run", facts, None, report)))
    os.close(wake_writer)
    os.close(data_writer)
    reader.join(10)
    assert not reader.is_alive()
    assert len(exporter.runs) == 2
    os.close(data_reader)
