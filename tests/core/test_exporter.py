"""BatchExporter against a real HTTP server on loopback."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from chronos_core import BatchExporter, ExecutionEvent, JobDefinition, RetryPolicy
from tests.support.events import make_event
from tests.support.recording_server import BlackHole, RecordingServer, Scripted

FAST = RetryPolicy(initial=0.05, maximum=0.2)
ROOT = Path(__file__).resolve().parents[2]


def exporter_for(url: str, **kwargs: object) -> BatchExporter:
    options: dict[str, object] = {
        "api_key": "test-key",
        "endpoint": url,
        "flush_interval": 0.1,
        "export_timeout": 2.0,
        "request_timeout": 1.0,
    }
    options.update(kwargs)
    return BatchExporter(retry=FAST, **options)


def test_batches_by_size_and_delivers_everything_once(recording_server: RecordingServer) -> None:
    exporter = exporter_for(recording_server.url, max_batch_size=100, flush_interval=30)
    for n in range(250):
        assert exporter.record(make_event(n))
    # Two full batches go without waiting for the interval.
    assert len(recording_server.wait_for(200, timeout=5)) >= 200
    assert exporter.flush(5)
    ids = recording_server.acknowledged_exec_ids()
    assert sorted(ids) == sorted(f"job-1:{n}" for n in range(250))
    assert all(len(r.body["executions"]) <= 100 for r in recording_server.requests)
    stats = exporter.stats()
    assert (stats.sent, stats.queued, stats.dropped_total) == (250, 0, 0)
    exporter.shutdown(1)


def test_partial_batch_goes_on_the_interval(recording_server: RecordingServer) -> None:
    exporter = exporter_for(recording_server.url, flush_interval=0.2)
    exporter.record(make_event(1))
    assert recording_server.wait_for(1, timeout=3) == ["job-1:1"]
    exporter.shutdown(1)


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
def test_refused_batches_are_dropped_with_the_reason_not_retried(
    recording_server: RecordingServer, status: int
) -> None:
    recording_server.respond(Scripted(status))
    exporter = exporter_for(recording_server.url)
    for n in range(3):
        exporter.record(make_event(n))
    assert exporter.flush(5)
    assert len(recording_server.requests) == 1
    stats = exporter.stats()
    assert stats.dropped == {f"http_{status}": 3}
    assert stats.sent == 0
    exporter.shutdown(1)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_answers_are_retried_and_counted(
    recording_server: RecordingServer, status: int
) -> None:
    recording_server.respond(Scripted(status), Scripted(status))
    exporter = exporter_for(recording_server.url)
    exporter.record(make_event(1))
    assert exporter.flush(5)
    assert recording_server.acknowledged_exec_ids() == ["job-1:1"]
    stats = exporter.stats()
    assert stats.retried == 2
    assert stats.sent == 1
    exporter.shutdown(1)


def test_retry_after_is_honoured_by_the_exporter(recording_server: RecordingServer) -> None:
    recording_server.respond(Scripted(429, headers={"Retry-After": "1"}))
    exporter = exporter_for(recording_server.url)
    started = time.monotonic()
    exporter.record(make_event(1))
    assert exporter.flush(5)
    assert time.monotonic() - started >= 0.95
    assert recording_server.acknowledged_exec_ids() == ["job-1:1"]
    exporter.shutdown(1)


def test_items_refused_inside_an_accepted_batch_are_counted(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(
        Scripted(
            200,
            body={
                "success": True,
                "ingested": 1,
                "errors": [{"index": 1, "field": "status", "message": "bad"}],
            },
        )
    )
    exporter = exporter_for(recording_server.url)
    exporter.record(make_event(1))
    exporter.record(make_event(2))
    assert exporter.flush(5)
    assert exporter.stats().sent == 1
    assert exporter.stats().dropped == {"rejected_item": 1}
    exporter.shutdown(1)


def test_full_queue_drops_and_counts(black_hole: BlackHole) -> None:
    exporter = exporter_for(black_hole.url, max_queue_size=10, max_batch_size=5)
    accepted = sum(exporter.record(make_event(n)) for n in range(40))
    # The queue holds 10; the sending thread may already hold one batch of 5.
    assert 10 <= accepted <= 15
    assert exporter.stats().dropped["queue_full"] == 40 - accepted
    exporter.shutdown(0.5)


def test_shutdown_is_bounded_when_the_server_black_holes(black_hole: BlackHole) -> None:
    exporter = exporter_for(black_hole.url, export_timeout=30.0, request_timeout=10.0)
    for n in range(50):
        exporter.record(make_event(n))
    time.sleep(0.2)  # let the thread start its first request
    started = time.monotonic()
    assert exporter.shutdown(2) is False
    assert time.monotonic() - started < 2.5
    stats = exporter.stats()
    assert stats.sent == 0
    assert stats.dropped["shutdown"] == 50
    assert exporter.record(make_event(99)) is False


def test_record_never_raises_even_when_the_exporter_is_broken(
    recording_server: RecordingServer,
) -> None:
    class BrokenQueue(deque[object]):
        def append(self, item: object) -> None:
            raise RuntimeError("bug in the SDK")

    exporter = exporter_for(recording_server.url)
    exporter._queue = BrokenQueue()  # type: ignore[assignment]
    assert exporter.record(make_event(1)) is False
    assert exporter.stats().dropped["internal_error"] == 1


def test_disabled_exporter_needs_no_key_and_sends_nothing(
    recording_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHRONOS_API_KEY", raising=False)
    exporter = BatchExporter(endpoint=recording_server.url, disabled=True)
    assert exporter.record(make_event(1)) is False
    assert exporter.stats().dropped == {"disabled": 1}
    assert recording_server.requests == []


def test_outage_keeps_events_queued_and_delivers_each_once(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(recording_server.url, max_batch_size=100)
    recording_server.refuse()
    for n in range(2_000):
        assert exporter.record(make_event(n))
        if n % 100 == 0:
            time.sleep(0.15)  # spread over ~3 s while the server is down
    assert exporter.flush(0.5) is False
    assert exporter.stats().queued == 2_000
    recording_server.resume()
    assert exporter.flush(30)
    ids = recording_server.acknowledged_exec_ids()
    assert len(ids) == 2_000
    assert set(ids) == {f"job-1:{n}" for n in range(2_000)}
    assert exporter.stats().retried > 0
    exporter.shutdown(1)


@pytest.mark.slow
def test_thirty_second_outage_with_two_thousand_events(recording_server: RecordingServer) -> None:
    exporter = exporter_for(recording_server.url, export_timeout=5.0)
    recording_server.refuse()
    outage_started = time.monotonic()
    for n in range(2_000):
        exporter.record(make_event(n))
        time.sleep(0.014)  # 2,000 events over ~30 s
    while time.monotonic() - outage_started < 30:
        time.sleep(0.1)
    recording_server.resume()
    assert exporter.flush(60)
    ids = recording_server.acknowledged_exec_ids()
    assert len(ids) == 2_000
    assert set(ids) == {f"job-1:{n}" for n in range(2_000)}
    assert exporter.stats().dropped_total == 0
    exporter.shutdown(1)


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_spool_survives_a_restart_and_nothing_is_sent_twice(
    recording_server: RecordingServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    recording_server.refuse()
    first = _run_python(
        """
        from chronos_core import BatchExporter, RetryPolicy
        from tests.support.events import make_event
        exporter = BatchExporter(retry=RetryPolicy(initial=0.05, maximum=0.1), export_timeout=0.5)
        for n in range(120):
            exporter.record(make_event(n))
        exporter.shutdown(1)
        print(exporter.stats())
        """,
        CHRONOS_API_KEY="k",
        CHRONOS_ENDPOINT=recording_server.url,
        CHRONOS_SPOOL_DIR=str(spool),
    )
    assert first.returncode == 0, first.stderr
    assert sum(int(p.name.split("-")[2]) for p in spool.glob("*.batch")) == 120
    recording_server.resume()

    exporter = exporter_for(recording_server.url, spool_dir=spool)
    assert exporter.flush(10)
    ids = recording_server.acknowledged_exec_ids()
    assert sorted(ids) == sorted(f"job-1:{n}" for n in range(120))
    assert list(spool.glob("*.batch")) == []
    exporter.shutdown(1)

    again = exporter_for(recording_server.url, spool_dir=spool)
    again.record(make_event(500))
    assert again.flush(5)
    assert len(recording_server.acknowledged_exec_ids()) == 121
    again.shutdown(1)


def test_atexit_flushes_what_is_queued(recording_server: RecordingServer) -> None:
    result = _run_python(
        """
        from chronos_core import BatchExporter
        from tests.support.events import make_event
        exporter = BatchExporter(flush_interval=60)
        for n in range(7):
            exporter.record(make_event(n))
        """,
        CHRONOS_API_KEY="k",
        CHRONOS_ENDPOINT=recording_server.url,
    )
    assert result.returncode == 0, result.stderr
    assert len(recording_server.acknowledged_exec_ids()) == 7


def _in_forked_child(check: Callable[[], bool]) -> int:
    """Run `check` in a forked child; its exit code: 0 if it held, 3 if not, 1 if it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # child
        code = 1
        signal.alarm(20)  # a child stuck on a lock ends rather than hanging the test
        try:
            code = 0 if check() else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_forked_child_sends_its_own_events_not_the_parents(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(recording_server.url, flush_interval=60, max_batch_size=1000)
    for n in range(10):
        exporter.record(make_event(n, job_id="parent"))

    def child() -> bool:
        for n in range(5):
            exporter.record(make_event(n, job_id="child"))
        return exporter.flush(5) and exporter.stats().sent == 5

    assert _in_forked_child(child) == 0
    child_requests = recording_server.acknowledged_exec_ids()
    assert sorted(child_requests) == sorted(f"child:{n}" for n in range(5))
    assert exporter.flush(5)
    ids = recording_server.acknowledged_exec_ids()
    assert sorted(ids) == sorted(
        [f"child:{n}" for n in range(5)] + [f"parent:{n}" for n in range(10)]
    )
    exporter.shutdown(1)


def test_a_shut_down_exporter_stays_shut_down_in_a_forked_child(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(recording_server.url, flush_interval=60)
    exporter.record(make_event(0, job_id="parent"))
    assert exporter.shutdown(5)

    def child() -> bool:
        refused = not exporter.record(make_event(1, job_id="child"))
        return refused and exporter.stats().dropped == {"shutdown": 1}

    assert _in_forked_child(child) == 0
    assert recording_server.acknowledged_exec_ids() == ["parent:0"]


def test_a_forked_child_uses_the_exporter_while_a_parent_thread_holds_its_lock(
    recording_server: RecordingServer,
) -> None:
    """The child's state is rebuilt on its first use, before any lock is taken: a lock a
    thread of the parent held at the fork (copied locked) is never waited for."""
    exporter = exporter_for(recording_server.url, flush_interval=60)
    exporter.record(make_event(0, job_id="parent"))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exporter._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)

    def child() -> bool:
        exporter.forget_job("some-job")  # takes the lock: would wait for ever on the copy
        stats = exporter.stats()  # its own counters, not the parent's queued event
        exporter.register_jobs([])
        recorded = exporter.record(make_event(1, job_id="child"))
        return stats.queued == 0 and recorded and exporter.flush(5)

    try:
        assert _in_forked_child(child) == 0
    finally:
        release.set()
        holder.join(5)
    assert recording_server.acknowledged_exec_ids() == ["child:1"]
    assert exporter.flush(5)
    assert sorted(recording_server.acknowledged_exec_ids()) == ["child:1", "parent:0"]
    exporter.shutdown(1)


def test_threads_of_a_forked_child_first_using_the_exporter_at_once_lose_nothing(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(recording_server.url, flush_interval=60, max_batch_size=1000)
    exporter.record(make_event(0, job_id="parent"))

    def child() -> bool:
        # A rebuild that takes a while, so that the threads do arrive while it runs.
        rebuild = BatchExporter._init_state

        def slow_rebuild(self: BatchExporter) -> None:
            time.sleep(0.05)
            rebuild(self)

        BatchExporter._init_state = slow_rebuild  # type: ignore[method-assign]
        start = threading.Barrier(8)

        def first_use(n: int) -> None:
            start.wait()
            exporter.record(make_event(n, job_id="child"))

        threads = [threading.Thread(target=first_use, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        exporters = [t for t in threading.enumerate() if t.name == "chronos-exporter"]
        return exporter.flush(5) and exporter.stats().sent == 8 and len(exporters) == 1

    assert _in_forked_child(child) == 0
    assert sorted(recording_server.acknowledged_exec_ids()) == [f"child:{n}" for n in range(8)]
    exporter.shutdown(1)


def test_exporter_log_records_do_not_loop_back(
    recording_server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    recording_server.respond(*[Scripted(400) for _ in range(5)])
    exporter = exporter_for(recording_server.url, max_batch_size=1)
    with caplog.at_level(logging.WARNING, logger="chronos_core.exporter"):
        for n in range(5):
            exporter.record(make_event(n))
        assert exporter.flush(5)
    # Five drops, one warning: the log is rate-limited per reason.
    assert exporter.stats().dropped == {"http_400": 5}
    warnings_logged = [r for r in caplog.records if r.name == "chronos_core.exporter"]
    assert len(warnings_logged) == 1
    exporter.shutdown(1)


def test_a_run_records_its_output_but_not_the_exporters_log(
    recording_server: RecordingServer, console: pytest.CaptureFixture[str]
) -> None:
    from chronos_core import capture

    recording_server.respond(Scripted(400))
    exporter = exporter_for(recording_server.url, max_batch_size=1)
    with capture("warm-up", sink=exporter, capture_console=True):
        pass
    handler = logging.StreamHandler(sys.stderr)
    log = logging.getLogger("chronos_core.exporter")
    log.addHandler(handler)
    # A Celery test worker earlier in the session leaves the root logger at ERROR.
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with capture("job", sink=exporter, capture_console=True):
            print("user output")
            # The warm-up batch is refused meanwhile: the exporter's thread logs a warning.
            assert exporter.flush(5)
        assert exporter.flush(5)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert "dropped 1 event(s): http_400" in console.readouterr().err
    [job_run] = [
        e for r in recording_server.requests for e in r.body["executions"] if e["jobId"] == "job"
    ]
    assert job_run["stdout"] == "user output\n"
    assert "stderr" not in job_run or "dropped" not in job_run["stderr"]
    exporter.shutdown(1)


def _job(job_id: str, schedule: str = "* * * * *") -> JobDefinition:
    return JobDefinition(id=job_id, name=job_id.title(), schedule=schedule)


def test_job_registrations_are_coalesced_and_sent_before_runs(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(recording_server.url, flush_interval=30)
    exporter.register_jobs([_job("a"), _job("b")])
    exporter.register_jobs([_job("a", "0 * * * *")])  # newest definition of `a` wins
    exporter.record(make_event(1, job_id="a"))
    assert exporter.flush(5)
    first, second = recording_server.requests
    assert first.path == "/api/ingest/jobs/register"
    assert {job["id"]: job["schedule"] for job in first.body["jobs"]} == {
        "a": "0 * * * *",
        "b": "* * * * *",
    }
    assert second.path == "/api/ingest/executions/batch"
    # Identical definitions are not sent again; a changed one is.
    exporter.register_jobs([_job("a", "0 * * * *"), _job("b")])
    assert exporter.flush(5)
    assert len(recording_server.requests) == 2
    exporter.register_jobs([_job("b", "5 * * * *")])
    assert exporter.flush(5)
    assert [job["id"] for job in recording_server.requests[-1].body["jobs"]] == ["b"]
    assert exporter.stats().jobs_registered == 3
    exporter.shutdown(1)


def test_job_registration_waits_out_an_outage(recording_server: RecordingServer) -> None:
    exporter = exporter_for(recording_server.url)
    recording_server.refuse()
    exporter.register_jobs([_job("a")])
    assert exporter.flush(0.5) is False
    recording_server.resume()
    assert exporter.flush(10)
    assert [r.path for r in recording_server.requests] == ["/api/ingest/jobs/register"]
    assert exporter.stats().jobs_registered == 1
    exporter.shutdown(1)


def test_refused_job_registration_is_counted_not_retried(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(Scripted(422))
    exporter = exporter_for(recording_server.url)
    exporter.register_jobs([_job("a"), _job("b")])
    assert exporter.flush(5)
    assert len(recording_server.requests) == 1
    assert exporter.stats().jobs_rejected == 2
    exporter.shutdown(1)


class _Deferred:
    """A finished run whose event is made when the exporter asks for it."""

    def __init__(self, n: int, *, broken: bool = False) -> None:
        self.n = n
        self.broken = broken
        self.built_on: str | None = None

    def event(self) -> ExecutionEvent:
        import threading

        self.built_on = threading.current_thread().name
        if self.broken:
            raise RuntimeError("a bug in an integration")
        return make_event(self.n)


class _DeferredWire(_Deferred):
    """A deferred run that also offers its wire form, which the exporter prefers."""

    def wire(self) -> dict[str, object]:
        return self.event().to_wire()


class _DeferredJson(_Deferred):
    """A deferred run that offers its wire form as JSON, which the exporter prefers."""

    def wire(self) -> dict[str, object]:
        raise AssertionError("wire_json() comes first")

    def wire_json(self) -> bytes:
        return json.dumps(self.event().to_wire()).encode()


def test_deferred_runs_are_built_on_the_exporters_thread_and_a_broken_one_is_counted(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(recording_server.url, max_batch_size=10)
    kinds = (_Deferred, _DeferredWire, _DeferredJson)
    runs = [kinds[n % 3](n, broken=n == 3) for n in range(6)]
    for run in runs:
        assert exporter.record_deferred(run)
    exporter.record(make_event(9))
    assert exporter.flush(5)
    assert sorted(recording_server.acknowledged_exec_ids()) == [
        f"job-1:{n}" for n in (0, 1, 2, 4, 5, 9)
    ]
    # Each one's JSON is the event's, however the run gave it.
    bodies = [e for r in recording_server.requests for e in r.body["executions"]]
    assert sorted(bodies, key=lambda e: e["execId"]) == [
        json.loads(json.dumps(make_event(n).to_wire())) for n in (0, 1, 2, 4, 5, 9)
    ]
    assert {run.built_on for run in runs} == {"chronos-exporter"}
    stats = exporter.stats()
    assert (stats.sent, stats.queued, stats.dropped) == (6, 0, {"internal_error": 1})
    exporter.shutdown(1)


def test_deferred_runs_obey_the_queue_bound(black_hole: BlackHole) -> None:
    exporter = exporter_for(black_hole.url, max_queue_size=2, max_batch_size=100)
    accepted = [exporter.record_deferred(_Deferred(n)) for n in range(5)]
    assert accepted.count(False) >= 3
    assert exporter.stats().dropped["queue_full"] >= 3
    exporter.shutdown(0.2)


def test_a_steady_stream_leaves_in_full_batches(recording_server: RecordingServer) -> None:
    # Woken by a full batch, the thread sends full batches only: events that arrive while a
    # request is in flight wait for the next full batch (or the interval), instead of leaving
    # a few at a time, one small request per round trip.
    exporter = exporter_for(recording_server.url, max_batch_size=50, flush_interval=30)
    for n in range(1_020):
        assert exporter.record(make_event(n))
        if n % 10 == 0:
            time.sleep(0.001)
    assert len(recording_server.wait_for(1_000, timeout=10)) >= 1_000
    assert [len(r.body["executions"]) for r in recording_server.requests] == [50] * 20
    assert exporter.flush(5)
    assert len(recording_server.requests[-1].body["executions"]) == 20
    assert exporter.stats().sent == 1_020
    exporter.shutdown(1)


def _wire_size(request_body: dict[str, object]) -> int:
    # The events here are ASCII only: this is the size of the JSON the exporter sent.
    return len(json.dumps(request_body, separators=(",", ":")).encode())


def _event_with_output(n: int, size: int) -> ExecutionEvent:
    return make_event(n).model_copy(update={"stdout": "x" * size})


def test_a_batch_over_max_batch_bytes_is_split_and_a_huge_event_goes_alone(
    recording_server: RecordingServer,
) -> None:
    budget = 4_096
    exporter = exporter_for(
        recording_server.url, max_batch_size=100, max_batch_bytes=budget, flush_interval=30
    )
    # Requests in order: the events before the huge one, the huge one alone, the rest.
    recording_server.respond(Scripted(200), Scripted(413))
    for n in range(3):
        assert exporter.record(_event_with_output(n, 900))
    assert exporter.record(_event_with_output(3, 6_000))
    for n in range(4, 30):
        assert (
            exporter.record_deferred((_DeferredWire if n % 4 == 1 else _DeferredJson)(n))
            if n % 2
            else exporter.record(_event_with_output(n, 900))
        )
    assert exporter.flush(5)
    requests = recording_server.requests
    sizes = [_wire_size(r.body) for r in requests]
    counts = [len(r.body["executions"]) for r in requests]
    assert len(requests) >= 5
    assert (requests[1].status, counts[1]) == (413, 1)
    assert sizes[1] > budget
    assert all(size <= budget for n, size in enumerate(sizes) if n != 1)
    assert sum(counts) == 30
    ids = recording_server.acknowledged_exec_ids()
    assert ids == [f"job-1:{n}" for n in range(30) if n != 3]
    stats = exporter.stats()
    assert (stats.sent, stats.queued, stats.dropped) == (29, 0, {"http_413": 1})
    exporter.shutdown(1)


def test_an_outage_during_a_split_batch_resends_only_what_was_not_acknowledged(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(
        recording_server.url,
        max_batch_size=100,
        max_batch_bytes=4_096,
        flush_interval=30,
        export_timeout=0.5,
    )
    # The second request is refused for longer than export_timeout: the thread keeps it and
    # the ones after it, pauses, and sends them again.
    recording_server.respond(Scripted(200), Scripted(503, headers={"Retry-After": "1"}))
    for n in range(20):
        assert exporter.record(_event_with_output(n, 900))
    assert exporter.flush(10)
    ids = recording_server.acknowledged_exec_ids()
    assert ids == [f"job-1:{n}" for n in range(20)]
    assert [r.status for r in recording_server.requests][:3] == [200, 503, 200]
    stats = exporter.stats()
    assert (stats.sent, stats.queued, stats.dropped_total) == (20, 0, 0)
    assert stats.retried >= 1
    exporter.shutdown(1)


def test_the_spool_writes_a_split_batch_as_several_files(
    recording_server: RecordingServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    recording_server.refuse()
    exporter = exporter_for(
        recording_server.url,
        spool_dir=spool,
        max_batch_bytes=4_096,
        export_timeout=0.3,
        flush_interval=30,
    )
    for n in range(20):
        assert exporter.record(_event_with_output(n, 900))
    exporter.shutdown(0.5)
    files = list(spool.glob("*.batch"))
    assert len(files) >= 5
    assert sum(int(p.name.split("-")[2]) for p in files) == 20
    recording_server.resume()
    again = exporter_for(recording_server.url, spool_dir=spool)
    assert again.flush(10)
    assert sorted(recording_server.acknowledged_exec_ids()) == sorted(
        f"job-1:{n}" for n in range(20)
    )
    again.shutdown(1)


def test_a_batch_kept_through_an_outage_is_counted_at_shutdown(black_hole: BlackHole) -> None:
    exporter = exporter_for(black_hole.url, export_timeout=0.3, request_timeout=0.1)
    for n in range(5):
        assert exporter.record(make_event(n))
    assert not exporter.flush(1)
    exporter.shutdown(0.5)
    # Counted whether the thread was still in a request or waiting to try again.
    stats = exporter.stats()
    assert (stats.sent, stats.dropped) == (0, {"shutdown": 5})


class _DeferredNotJson(_Deferred):
    """A deferred run whose wire form cannot be written as JSON."""

    def wire(self) -> dict[str, object]:
        return {**self.event().to_wire(), "metadata": {"x": object()}}


def test_a_deferred_run_that_is_not_json_is_counted_and_the_rest_delivered(
    recording_server: RecordingServer,
) -> None:
    exporter = exporter_for(recording_server.url, max_batch_size=10)
    for n in range(4):
        assert exporter.record_deferred((_DeferredNotJson if n == 2 else _DeferredWire)(n))
    assert exporter.flush(5)
    assert recording_server.acknowledged_exec_ids() == ["job-1:0", "job-1:1", "job-1:3"]
    stats = exporter.stats()
    assert (stats.sent, stats.queued, stats.dropped) == (3, 0, {"internal_error": 1})
    exporter.shutdown(1)
