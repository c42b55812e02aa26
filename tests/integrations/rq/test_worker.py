"""A real forking RQ worker (subprocess) against the real Redis and the real server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from redis import Redis
from rq import Queue, Retry
from rq.job import JobStatus

from chronos_core import ExecutionStatus, Source
from chronos_integrations.rq._relay import RESTART_INTERVAL
from tests.integrations.rq.conftest import run_worker, start_worker
from tests.support.live_server import ThreadedServer

JOBS = "tests.integrations.rq.jobs"


def test_a_hundred_jobs_are_a_hundred_executions(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    enqueued = [queue.enqueue(f"{JOBS}.add", n, 1) for n in range(100)]
    done = run_worker(live_server, queue_name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(job.get_status() == JobStatus.FINISHED for job in enqueued)

    found = live_server.wait_for_executions(f"{JOBS}.add", 100)
    time.sleep(0.5)  # anything extra would have arrived with the rest
    stored = live_server.executions(f"{JOBS}.add")
    assert len(stored) == 100
    assert len({e.exec_id for e in stored}) == 100
    assert {e.metadata["rqJobId"] for e in stored} == {job.id for job in enqueued}
    assert all(e.status is ExecutionStatus.SUCCESS for e in found)
    sample = stored[0]
    assert sample.source is Source.RQ
    assert sample.queue == queue_name
    assert sample.worker == f"worker-{queue_name}"
    assert sample.duration_ms is not None
    assert sample.finished_at is not None


def test_failure_output_and_timeout(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    chatty = queue.enqueue(f"{JOBS}.chatty", 21)
    broken = queue.enqueue(f"{JOBS}.broken")
    slow = queue.enqueue(f"{JOBS}.sleepy", 30, job_timeout=1)
    done = run_worker(live_server, queue_name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert chatty.return_value() == 42

    [ok] = live_server.wait_for_executions(f"{JOBS}.chatty", 1)
    assert ok.status is ExecutionStatus.SUCCESS
    assert ok.stdout == "processing 21\n"
    assert ok.stderr == "careful\n"

    [failed] = live_server.wait_for_executions(f"{JOBS}.broken", 1)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error_type == "ValueError"
    assert failed.error_message == "bad row 7"
    assert failed.error_stack is not None
    assert 'raise ValueError("bad row 7")' in failed.error_stack
    assert failed.code_snippet is not None
    assert 'raise ValueError("bad row 7")' in failed.code_snippet
    assert failed.stdout == "about to fail\n"
    assert broken.get_status() == JobStatus.FAILED

    [timed_out] = live_server.wait_for_executions(f"{JOBS}.sleepy", 1)
    assert timed_out.status is ExecutionStatus.TIMEOUT
    assert timed_out.error_type == "rq.timeouts.JobTimeoutException"
    assert timed_out.duration_ms is not None
    # The alarm is armed just before the capture starts, so a hair under the 1 s timeout.
    assert 900 <= timed_out.duration_ms < 5000
    assert slow.get_status() == JobStatus.FAILED


def test_what_the_parent_prints_is_no_jobs_output(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    for n in range(3):
        queue.enqueue(f"{JOBS}.chatty", n)
    queue.enqueue(f"{JOBS}.add", 1, 2)
    done = run_worker(live_server, queue_name, worker_class=f"{JOBS}.ChattyParentWorker")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("parent: forking for") == 4
    # And after each horse, the parent's job object no longer holds the armed `HorseCall`.
    assert done.stderr.count("released: True") == 4, done.stderr[-3000:]
    found = live_server.wait_for_executions(f"{JOBS}.chatty", 3)
    assert sorted(e.stdout or "" for e in found) == [f"processing {n}\n" for n in range(3)]
    assert {e.stderr for e in found} == {"careful\n"}
    [quiet] = live_server.wait_for_executions(f"{JOBS}.add", 1)
    assert (quiet.stdout, quiet.stderr) == (None, None)


def test_retried_job_reports_each_attempt(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    queue.enqueue(f"{JOBS}.broken", retry=Retry(max=1))
    done = run_worker(live_server, queue_name)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(live_server.wait_for_executions(f"{JOBS}.broken", 2), key=lambda e: e.attempt)
    assert [(e.attempt, e.status) for e in runs] == [
        (1, ExecutionStatus.RETRYING),
        (2, ExecutionStatus.FAILED),
    ]


def test_a_killed_work_horse_is_reported_by_the_parent(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    queue.enqueue(f"{JOBS}.kill_myself")
    queue.enqueue(f"{JOBS}.add", 1, 2)
    done = run_worker(live_server, queue_name)
    assert done.returncode == 0, done.stderr[-3000:]
    [killed] = live_server.wait_for_executions(f"{JOBS}.kill_myself", 1)
    assert killed.status is ExecutionStatus.FAILED
    assert killed.error_message is not None
    assert "signal 9" in killed.error_message
    assert killed.worker == f"worker-{queue_name}"
    assert len(live_server.wait_for_executions(f"{JOBS}.add", 1)) == 1


def test_a_horse_leaves_the_parents_objects_to_the_parent(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    # Frozen for the fork (the horse's collections never walk them, so its pages stay
    # shared), and back in the parent's own collections right after; the parent collects in
    # full every `chronos_full_collection_every` forks (2 here), or its garbage would pile up
    # in the oldest generation.
    queue = Queue(queue_name, connection=redis)
    enqueued = [queue.enqueue(f"{JOBS}.frozen_objects") for _ in range(4)]
    done = run_worker(live_server, queue_name, worker_class=f"{JOBS}.FreezeReportingWorker")
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(job.return_value() > 10_000 for job in enqueued)
    assert done.stderr.count("parent frozen after fork: 0") == 4, done.stderr[-3000:]
    full = [int(line.split(": ")[1]) for line in done.stderr.splitlines() if "full coll" in line]
    assert len(full) == 4
    assert full[3] - full[0] >= 2, full  # at the 2nd and 4th forks (and any of Python's own)
    # It starts no thread of its own (cron schedules are read with RQ's maintenance tasks):
    # each thread costs every horse, and could hold a lock across the fork.
    threads = [line for line in done.stderr.splitlines() if line.startswith("threads: ")]
    assert len(threads) == 4
    assert not any("chronos" in line for line in threads), threads
    live_server.wait_for_executions(f"{JOBS}.frozen_objects", 4)


def test_chronos_job_id_from_job_meta(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    queue.enqueue(f"{JOBS}.add", 2, 2, meta={"chronos_job_id": "nightly-sum"})
    done = run_worker(live_server, queue_name)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = live_server.wait_for_executions("nightly-sum", 1)
    assert run.status is ExecutionStatus.SUCCESS


def test_worker_without_api_key_still_runs_jobs(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    job = queue.enqueue(f"{JOBS}.add", 3, 4)
    done = run_worker(live_server, queue_name, extra_env={"CHRONOS_API_KEY": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert job.return_value() == 7
    assert "RQ jobs will not be reported" in done.stderr


def test_an_outcome_too_large_for_the_pipe_is_sent_by_the_horse(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    queue = Queue(queue_name, connection=redis)
    jobs = [queue.enqueue(f"{JOBS}.chatty", n) for n in range(3)]
    done = run_worker(live_server, queue_name, worker_class=f"{JOBS}.TinyPipeWorker")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [job.return_value() for job in jobs] == [0, 2, 4]
    found = live_server.wait_for_executions(f"{JOBS}.chatty", 3)
    time.sleep(0.5)  # anything extra would have arrived with the rest
    assert len(live_server.executions(f"{JOBS}.chatty")) == 3
    assert sorted(e.stdout or "" for e in found) == [f"processing {n}\n" for n in range(3)]
    assert all(e.status is ExecutionStatus.SUCCESS for e in found)
    assert len({e.pid for e in found}) == 3, "each reported from its own horse"


def test_the_worker_leaves_exporting_to_its_relay_process(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    # Neither the worker nor its horses load the exporter, the models or their libraries
    # (each fork would copy their pages), yet every run arrives, cron registration included.
    queue = Queue(queue_name, connection=redis)
    enqueued = [queue.enqueue(f"{JOBS}.relayed_modules_loaded") for _ in range(3)]
    done = run_worker(live_server, queue_name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [job.return_value() for job in enqueued] == [[], [], []]
    found = live_server.wait_for_executions(f"{JOBS}.relayed_modules_loaded", 3)
    assert {e.metadata["rqJobId"] for e in found} == {job.id for job in enqueued}
    assert all(e.status is ExecutionStatus.SUCCESS and e.pid for e in found)


def test_the_capture_code_loads_once_a_run_needs_it(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    # Quiet successes never load it; the first horse that needs it (a failure) loads it for
    # itself, and its worker then loads it too, for the next horses to inherit.
    queue = Queue(queue_name, connection=redis)
    before = queue.enqueue(f"{JOBS}.capture_loaded")
    queue.enqueue(f"{JOBS}.broken")
    after = queue.enqueue(f"{JOBS}.capture_loaded")
    done = run_worker(live_server, queue_name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert before.return_value() is False
    assert after.return_value() is True
    [failed] = live_server.wait_for_executions(f"{JOBS}.broken", 1)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.code_snippet is not None
    assert 'raise ValueError("bad row 7")' in failed.code_snippet
    runs = live_server.wait_for_executions(f"{JOBS}.capture_loaded", 2)
    assert [run.status for run in runs] == [ExecutionStatus.SUCCESS] * 2


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == pid and b"chronos_integrations.rq._relay" in cmdline:
            children.append(int(entry.name))
    return children


def _ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_the_relay_delivers_and_ends_when_its_worker_is_killed(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    # A worker killed with SIGKILL cannot stop its relay: the relay sees the end of its
    # input, sends what it holds, and exits.
    queue = Queue(queue_name, connection=redis)
    queue.enqueue(f"{JOBS}.add", 1, 2)
    # Nothing goes out before the relay's input ends.
    worker = start_worker(live_server, queue_name, {"CHRONOS_FLUSH_INTERVAL": "30"})
    try:
        deadline = time.monotonic() + 30
        while redis.llen(f"rq:queue:{queue_name}") or not redis.keys("rq:results:*"):
            assert time.monotonic() < deadline, "the job did not run"
            time.sleep(0.1)
        time.sleep(0.5)  # the worker hands the run to its relay after the horse exits
        [relay] = _children(worker.pid)
        assert live_server.executions(f"{JOBS}.add") == []
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=10)
    [run] = live_server.wait_for_executions(f"{JOBS}.add", 1, timeout=15)
    assert run.status is ExecutionStatus.SUCCESS
    deadline = time.monotonic() + 15
    while not _ended(relay):
        assert time.monotonic() < deadline, "the relay did not exit"
        time.sleep(0.1)


def test_a_relay_that_ended_is_replaced(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    # The OOM killer or a crash ends the relay: the worker starts another at its next run
    # (at most once per RESTART_INTERVAL after the last start), and runs keep arriving.
    queue = Queue(queue_name, connection=redis)
    worker = start_worker(live_server, queue_name)
    try:
        queue.enqueue(f"{JOBS}.add", 1, 2)
        live_server.wait_for_executions(f"{JOBS}.add", 1)
        [relay] = _children(worker.pid)
        os.kill(relay, signal.SIGKILL)
        time.sleep(RESTART_INTERVAL)  # since the relay started, before the first run
        queue.enqueue(f"{JOBS}.chatty", 5)
        [run] = live_server.wait_for_executions(f"{JOBS}.chatty", 1)
        assert run.status is ExecutionStatus.SUCCESS
        assert run.stdout == "processing 5\n"
        [replacement] = _children(worker.pid)
        assert replacement != relay
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert "the relay process ended (-9); started another" in stderr, stderr[-3000:]
