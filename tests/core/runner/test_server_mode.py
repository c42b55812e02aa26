"""Server mode against a real Socket.IO server on loopback (the original's protocol)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from chronos_core import ExecutionStatus
from chronos_core.runner import ChronosRunner
from tests.core.runner.conftest import KeepingExporter
from tests.core.runner.trigger_server import TriggerServer

MakeRunner = Callable[..., ChronosRunner]


def server_runner(
    make_runner: MakeRunner, server: TriggerServer, **options: object
) -> ChronosRunner:
    return make_runner(
        mode="server",
        api_key=server.api_key,
        endpoint=server.url,
        reconnect_delay=0.1,
        reconnect_delay_max=0.5,
        **options,
    )


def joined(server: TriggerServer, *job_ids: str) -> bool:
    return set(job_ids) <= {job for _, job in server.joins}


def test_connects_with_the_api_key_and_joins_each_job(
    make_runner: MakeRunner, trigger_server: TriggerServer
) -> None:
    runner = server_runner(make_runner, trigger_server)
    runner.register("job-1", lambda: None)
    runner.register("job-2", lambda: None)
    runner.start()
    assert trigger_server.wait_for(lambda: joined(trigger_server, "job-1", "job-2"))
    [connect] = trigger_server.connects
    assert connect["x-api-key"] == trigger_server.api_key
    assert runner.connected
    runner.register("job-3", lambda: None)  # added while connected
    assert trigger_server.wait_for(lambda: joined(trigger_server, "job-3"))


def test_a_trigger_runs_once_and_is_acknowledged(
    make_runner: MakeRunner, trigger_server: TriggerServer, exporter: KeepingExporter
) -> None:
    runner = server_runner(make_runner, trigger_server)
    calls: list[float] = []
    runner.register("report", lambda: calls.append(time.monotonic()))
    runner.start()
    assert trigger_server.wait_for(lambda: joined(trigger_server, "report"))

    due = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
    ack = trigger_server.trigger("report", "trig-1", scheduled_for=due)
    assert ack["accepted"] is True
    assert (ack["triggerId"], ack["jobId"], ack["outcome"]) == ("trig-1", "report", "started")
    assert ack["runnerId"] == runner.runner_id

    [run] = exporter.wait_final(1, "report")
    assert run.status is ExecutionStatus.SUCCESS
    assert run.trigger_id == "trig-1"
    assert run.scheduled_for == due
    assert trigger_server.wait_for(lambda: len(trigger_server.done) == 1)
    [done] = trigger_server.done
    assert (done["triggerId"], done["execId"], done["status"]) == ("trig-1", run.exec_id, "success")
    [emitted] = trigger_server.acks
    assert emitted["triggerId"] == "trig-1"
    assert emitted["accepted"] is True

    # The same trigger again (a server re-sending after a lost ack): not run twice.
    again = trigger_server.trigger("report", "trig-1", scheduled_for=due)
    assert (again["accepted"], again["outcome"]) == (True, "duplicate")
    time.sleep(0.3)
    assert len(calls) == 1
    assert len(exporter.final("report")) == 1


def test_triggers_it_cannot_run_are_refused(
    make_runner: MakeRunner, trigger_server: TriggerServer
) -> None:
    runner = server_runner(make_runner, trigger_server)
    runner.register("known", lambda: None)
    runner.start()
    assert trigger_server.wait_for(lambda: joined(trigger_server, "known"))
    sid = trigger_server.runners_of("known")[0]
    unknown = trigger_server.trigger("other-job", "t-9", sid=sid)
    assert (unknown["accepted"], unknown["outcome"]) == (False, "unknown-job")
    broken = trigger_server.call(
        trigger_server.sio.call("job:trigger", {"jobId": "known"}, to=sid, timeout=5)  # type: ignore[union-attr]
    )
    assert (broken["accepted"], broken["outcome"]) == (False, "invalid")


def test_overlapping_trigger_is_skipped_and_still_acknowledged(
    make_runner: MakeRunner, trigger_server: TriggerServer, exporter: KeepingExporter
) -> None:
    runner = server_runner(make_runner, trigger_server)
    release = threading.Event()
    runner.register("slow", lambda: release.wait(10), overlap="skip")
    runner.start()
    assert trigger_server.wait_for(lambda: joined(trigger_server, "slow"))
    assert trigger_server.trigger("slow", "a")["outcome"] == "started"
    second = trigger_server.trigger("slow", "b")
    assert (second["accepted"], second["outcome"]) == (True, "skipped")
    release.set()
    runs = exporter.wait_final(2, "slow")
    assert {(r.trigger_id, r.status) for r in runs} == {("a", "success"), ("b", "skipped")}


def test_reconnects_and_rejoins_after_the_server_restarts(
    make_runner: MakeRunner, trigger_server: TriggerServer, exporter: KeepingExporter
) -> None:
    runner = server_runner(make_runner, trigger_server)
    runner.register("nightly", lambda: None)
    runner.start()
    assert trigger_server.wait_for(lambda: joined(trigger_server, "nightly"))
    trigger_server.restart(pause=1.0)
    # In the new server process's room again (the runner may also have reconnected to the
    # old one while it was shutting down).
    assert trigger_server.wait_for(lambda: bool(trigger_server.runners_of("nightly")), timeout=15)
    assert len(trigger_server.connects) >= 2
    assert trigger_server.trigger("nightly", "after-restart")["accepted"] is True
    [run] = exporter.wait_final(1, "nightly")
    assert run.trigger_id == "after-restart"


def test_a_wrong_key_is_refused_and_the_runner_keeps_trying(
    make_runner: MakeRunner, trigger_server: TriggerServer
) -> None:
    runner = make_runner(
        mode="server", api_key="chr_wrong", endpoint=trigger_server.url, reconnect_delay=0.1
    )
    runner.register("job-1", lambda: None)
    runner.start()
    assert trigger_server.wait_for(lambda: len(trigger_server.refused) >= 2)
    assert not runner.connected
    assert trigger_server.joins == []


def test_stop_leaves_the_rooms_and_refuses_new_triggers(
    make_runner: MakeRunner, trigger_server: TriggerServer, exporter: KeepingExporter
) -> None:
    runner = server_runner(make_runner, trigger_server)
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(10)

    runner.register("work", work)
    runner.start()
    assert trigger_server.wait_for(lambda: joined(trigger_server, "work"))
    sid = trigger_server.runners_of("work")[0]
    trigger_server.trigger("work", "before-stop")
    assert started.wait(5)
    stopper = threading.Thread(target=runner.stop, kwargs={"timeout": 10})
    stopper.start()
    assert trigger_server.wait_for(lambda: "work" in {j for _, j in trigger_server.leaves})
    late = trigger_server.trigger("work", "after-stop", sid=sid)
    assert (late["accepted"], late["outcome"]) == (False, "stopping")
    release.set()
    stopper.join(10)
    [run] = exporter.final("work")
    assert (run.trigger_id, run.status) == ("before-stop", "success")
    assert {job for _, job in trigger_server.leaves} == {"work"}
