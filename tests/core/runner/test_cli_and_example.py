"""`chronos run module:runner` as a real process, and examples/standalone_runner.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.core.runner.trigger_server import TriggerServer
from tests.support.live_server import ThreadedServer

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "standalone_runner.py"
CHRONOS = [sys.executable, "-c", "from chronos_core.cli import main; main()"]


def environment(url: str, api_key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
    env.update(CHRONOS_API_KEY=api_key, CHRONOS_API_URL=url, PYTHONPATH=str(ROOT), **extra)
    return env


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(sig)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    return process.returncode, stderr


def test_chronos_run_stops_cleanly_on_sigterm_and_flushes_the_last_run(
    live_server: ThreadedServer, tmp_path: Path
) -> None:
    marker = tmp_path / "running"
    process = subprocess.Popen(
        [*CHRONOS, "run", "tests.core.runner.cli_app:runner", "--stop-timeout", "10"],
        cwd=ROOT,
        env=environment(live_server.url, live_server.api_key, RUNNER_TEST_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(marker)  # a run is in progress
    code, stderr = stop(process)
    assert code == 0, stderr
    assert "running tests.core.runner.cli_app:runner (local mode, jobs: cli-slow)" in stderr
    # The run that was going at SIGTERM finished and reached the server before exit.
    [run] = live_server.wait_for_executions("cli-slow", 1, timeout=5)
    assert run.status == "success"
    assert run.stdout == "finished after SIGTERM\n"
    [job] = [j for j in live_server.jobs() if j.id == "cli-slow"]
    assert job.signature_hash is not None


def test_chronos_run_accepts_a_factory_and_reports_bad_targets(live_server: ThreadedServer) -> None:
    env = environment(live_server.url, live_server.api_key)
    bad = subprocess.run(
        [*CHRONOS, "run", "tests.core.runner.cli_app:MARKER"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "not a ChronosRunner" in bad.stderr
    process = subprocess.Popen(
        [*CHRONOS, "run", "tests.core.runner.cli_app:make_runner"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    out = ""
    assert process.stderr is not None
    while "runner started" not in out and time.monotonic() < deadline:
        out += process.stderr.readline()
    code, _ = stop(process, signal.SIGINT)
    assert code == 0
    assert "runner started in local mode with 0 job(s)" in out  # the factory was called


def test_example_in_local_mode_against_the_server(live_server: ThreadedServer) -> None:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "local"],
        cwd=ROOT,
        env=environment(live_server.url, live_server.api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        beats = live_server.wait_for_executions("example-heartbeat", 2, timeout=30)
        [warm] = live_server.wait_for_executions("example-warm-cache", 1, timeout=30)
    finally:
        code, stderr = stop(process, signal.SIGINT)
    assert code == 0, stderr
    assert len(beats) >= 2
    assert {b.stdout for b in beats} == {"still alive\n"}
    assert warm.stdout == "cache warmed\n"
    jobs = {job.id: job for job in live_server.jobs()}
    assert jobs["example-hourly-report"].schedule == "0 * * * *"
    assert jobs["example-hourly-report"].timezone == "Europe/Berlin"
    assert jobs["example-warm-cache"].run_mode == "once"


@pytest.mark.usefixtures("trigger_server")
def test_example_in_server_mode_runs_what_the_server_triggers(
    trigger_server: TriggerServer,
) -> None:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "server"],
        cwd=ROOT,
        env=environment(trigger_server.url, trigger_server.api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        jobs = {"example-heartbeat", "example-hourly-report", "example-warm-cache"}
        assert trigger_server.wait_for(
            lambda: jobs <= {j for _, j in trigger_server.joins}, timeout=30
        )
        ack = trigger_server.trigger("example-hourly-report", "hourly-1")
        assert ack["accepted"] is True
        assert trigger_server.wait_for(lambda: len(trigger_server.done) == 1)
    finally:
        code, stderr = stop(process, signal.SIGTERM)
    assert code == 0, stderr
    [run] = trigger_server.final_executions("example-hourly-report")
    assert (run["triggerId"], run["status"], run["stdout"]) == (
        "hourly-1",
        "success",
        "report built\n",
    )
    # In server mode nothing runs unless the server says so.
    assert trigger_server.final_executions("example-heartbeat") == []
    assert {j["id"] for j in trigger_server.registered} == jobs
    assert {job for _, job in trigger_server.leaves} == jobs


def test_example_in_server_mode_against_the_real_server(live_server: ThreadedServer) -> None:
    """The server's scheduler triggers the example's jobs; each run carries its trigger."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "server"],
        cwd=ROOT,
        env=environment(live_server.url, live_server.api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        beats = live_server.wait_for_executions("example-heartbeat", 2, timeout=40)
        [warm] = live_server.wait_for_executions("example-warm-cache", 1, timeout=40)
    finally:
        code, stderr = stop(process, signal.SIGTERM)
    assert code == 0, stderr
    assert len(beats) >= 2
    assert all(b.status == "success" and b.trigger_id for b in beats)
    assert len({b.trigger_id for b in beats}) == len(beats)
    assert (warm.status, warm.stdout) == ("success", "cache warmed\n")
    assert warm.trigger_id
