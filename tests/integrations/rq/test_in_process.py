"""RQ workers run in the test process (SimpleWorker), custom worker classes, cron schedules."""

from __future__ import annotations

from typing import Any

import pytest
from redis import Redis
from rq import Queue
from rq.cron import CronScheduler
from rq.cron_scheduler_registry import get_registry_key
from rq.job import JobStatus
from rq.worker import SimpleWorker

from chronos_core import BatchExporter, ChronosClient, ExecutionEvent, ExecutionStatus, RunMode
from chronos_integrations.rq import (
    ChronosSimpleWorker,
    ChronosWorkerMixin,
    register_cron_jobs,
    with_chronos,
)
from chronos_integrations.rq import _worker as worker_module
from chronos_integrations.rq._cron import local_zone_name
from tests.integrations.rq import jobs
from tests.integrations.rq.conftest import REDIS_URL, run_probe, run_worker
from tests.support.live_server import ThreadedServer

JOBS = "tests.integrations.rq.jobs"


class ListSink:
    def __init__(self) -> None:
        self.events: list[ExecutionEvent] = []

    def record(self, event: ExecutionEvent) -> bool:
        self.events.append(event)
        return True


class BrokenSink:
    def record(self, event: ExecutionEvent) -> bool:
        raise RuntimeError("sink is broken")


def simple_worker(sink: Any, queue: Queue) -> Any:
    worker_class = type("Worker", (ChronosSimpleWorker,), {"chronos_exporter": sink})
    return worker_class([queue], connection=queue.connection)


def test_simple_worker_reports_in_process(redis: Redis, queue_name: str) -> None:
    sink = ListSink()
    queue = Queue(queue_name, connection=redis)
    ok = queue.enqueue(jobs.add, 20, 22)
    queue.enqueue(jobs.broken)
    simple_worker(sink, queue).work(burst=True)
    assert ok.return_value() == 42
    by_job = {e.job_id: e for e in sink.events}
    assert by_job[f"{JOBS}.add"].status is ExecutionStatus.SUCCESS
    assert by_job[f"{JOBS}.broken"].status is ExecutionStatus.FAILED
    assert by_job[f"{JOBS}.broken"].error_message == "bad row 7"


def test_with_chronos_adds_the_mixin_to_a_custom_class(redis: Redis, queue_name: str) -> None:
    class AuditedWorker(SimpleWorker):
        audited: list[str] = []

        def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
            self.audited.append(job.id)
            return super().perform_job(job, queue, *args, **kwargs)

    instrumented = with_chronos(AuditedWorker)
    assert issubclass(instrumented, ChronosWorkerMixin)
    assert issubclass(instrumented, AuditedWorker)
    assert with_chronos(instrumented) is instrumented
    sink = ListSink()
    instrumented.chronos_exporter = sink
    queue = Queue(queue_name, connection=redis)
    job = queue.enqueue(jobs.add, 1, 1)
    instrumented([queue], connection=redis).work(burst=True)
    assert AuditedWorker.audited == [job.id]
    assert [e.status for e in sink.events] == [ExecutionStatus.SUCCESS]


def test_failing_hooks_leave_job_results_unchanged(
    redis: Redis, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("chronos internals are broken")

    monkeypatch.setattr(worker_module, "_success_status", explode)
    monkeypatch.setattr(worker_module, "_failure_status", explode)
    queue = Queue(queue_name, connection=redis)
    ok = queue.enqueue(jobs.add, 2, 3)
    failing = queue.enqueue(jobs.broken)
    simple_worker(BrokenSink(), queue).work(burst=True)
    assert ok.get_status() == JobStatus.FINISHED
    assert ok.return_value() == 5
    assert failing.get_status() == JobStatus.FAILED
    result = failing.latest_result()
    assert result is not None
    assert "ValueError: bad row 7" in (result.exc_string or "")


def test_cron_schedules_are_registered(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    cron = CronScheduler(connection=redis, name=f"cron-{queue_name}")
    cron.register(jobs.hourly, queue_name, cron="0 * * * 1-5")
    cron.register(jobs.add, queue_name, args=(1, 2), interval=90)
    cron.register(
        jobs.chatty,
        queue_name,
        args=(1,),
        cron="30 2 * * *",
        meta={"chronos_job_id": "nightly-chatty"},
    )
    client = ChronosClient(api_key=live_server.api_key, endpoint=live_server.url)
    definitions = register_cron_jobs(cron, client=client)
    assert len(definitions) == 3
    stored = {job.id: job for job in live_server.jobs()}
    hourly = stored[f"{JOBS}.hourly"]
    assert (hourly.schedule, hourly.run_mode) == ("0 * * * 1-5", RunMode.RECURRING)
    assert hourly.timezone == local_zone_name()
    assert stored[f"{JOBS}.add"].interval_seconds == 90
    assert stored["nightly-chatty"].schedule == "30 2 * * *"
    client.close()


def test_chronos_worker_registers_cron_jobs_found_in_redis(
    redis: Redis, queue_name: str, live_server: ThreadedServer
) -> None:
    cron = CronScheduler(connection=redis, name=f"cron-{queue_name}")
    cron.register(jobs.hourly, queue_name, cron="15 * * * *")
    cron.register_birth()  # what `rq cron` does when it starts: save its jobs to Redis
    try:
        done = run_worker(live_server, queue_name)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        cron.register_death()
    stored = {job.id: job for job in live_server.jobs()}
    assert stored[f"{JOBS}.hourly"].schedule == "15 * * * *"


def test_without_a_cron_scheduler_the_worker_never_loads_rqs_cron_module(redis: Redis) -> None:
    # RQ's cron module brings croniter and dateutil, which a forking worker would carry into
    # every horse; one ZCARD tells that no `rq cron` ever ran against this database.
    redis.delete(get_registry_key())
    probe = f"""
import sys
from redis import Redis
from chronos_integrations.rq._cron import CronRegistration

class Target:
    def register_cron(self, entries):
        raise AssertionError(entries)

    def flush(self, timeout=None):
        return True

registration = CronRegistration(Redis.from_url({REDIS_URL!r}), Target())
print(registration.refresh(), "rq.cron" in sys.modules)
"""
    done = run_probe(probe)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0", "False"]


def test_exporter_settings_choose_console_capture(redis: Redis, queue_name: str) -> None:
    exporter = BatchExporter(api_key="k", endpoint="http://127.0.0.1:9", capture_console=True)
    try:
        worker_class = type("Worker", (ChronosSimpleWorker,), {"chronos_exporter": exporter})
        worker = worker_class([Queue(queue_name, connection=redis)], connection=redis)
        setup = worker._chronos()
        assert setup is not None
        assert setup[1] is True
    finally:
        exporter.shutdown(0.1)


def test_a_relay_that_cannot_run_leaves_the_worker_exporting_itself(
    redis: Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from chronos_core import _default
    from chronos_integrations.rq import ChronosWorker, _relay

    monkeypatch.setattr(_default, "_default", None)  # nothing configured in code
    monkeypatch.setenv("CHRONOS_API_KEY", "k")
    monkeypatch.setenv("CHRONOS_API_URL", "http://127.0.0.1:9")
    # A relay command that ends without answering (an interpreter that cannot start, say).
    monkeypatch.setattr(_relay, "_RELAY_MAIN", "import sys; sys.exit(3)")
    worker = ChronosWorker([Queue("relay-fallback", connection=redis)], connection=redis)
    setup = worker._chronos()
    assert setup is not None
    try:
        assert worker._chronos_link is None
        assert isinstance(setup[0], BatchExporter)
        assert "no relay process (the relay process ended without answering (3))" in caplog.text
    finally:
        setup[0].shutdown(0.1)
