"""`chronos exec` as a user runs it: a subprocess, a real server on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.live_server import ThreadedServer
from tests.support.recording_server import BlackHole, RecordingServer

CHRONOS = str(Path(sys.executable).with_name("chronos"))


def chronos_exec(
    *args: str, url: str, key: str | None = "k", timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
    environment.update(CHRONOS_API_URL=url, **env)
    if key is not None:
        environment["CHRONOS_API_KEY"] = key
    return subprocess.run(
        [CHRONOS, "exec", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_success_passes_output_through_and_reports_it(live_server: ThreadedServer) -> None:
    result = chronos_exec(
        "--job",
        "hello",
        "--schedule",
        "*/5 * * * *",
        "--",
        sys.executable,
        "-c",
        "import sys; print('hello out'); print('hello err', file=sys.stderr)",
        url=live_server.url,
        key=live_server.api_key,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello out\n"
    assert "hello err" in result.stderr
    [run] = live_server.wait_for_executions("hello", 1)
    assert run.status == "success"
    assert run.exit_code == 0
    assert run.stdout == "hello out\n"
    assert run.stderr == "hello err\n"
    assert run.source == "exec"
    assert run.duration_ms is not None
    assert run.duration_ms > 0
    [job] = live_server.jobs()
    assert (job.id, job.schedule) == ("hello", "*/5 * * * *")


def test_failure_keeps_the_commands_exit_code(live_server: ThreadedServer) -> None:
    result = chronos_exec(
        "--job",
        "broken",
        "--",
        sys.executable,
        "-c",
        "import sys; print('boom', file=sys.stderr); sys.exit(3)",
        url=live_server.url,
        key=live_server.api_key,
    )
    assert result.returncode == 3
    [run] = live_server.wait_for_executions("broken", 1)
    assert run.status == "failed"
    assert run.exit_code == 3
    assert run.error_message == "exited with code 3"
    assert run.stderr == "boom\n"


def test_missing_command_exits_127_and_is_reported(live_server: ThreadedServer) -> None:
    result = chronos_exec(
        "--job",
        "missing",
        "--",
        "no-such-command-xyz",
        url=live_server.url,
        key=live_server.api_key,
    )
    assert result.returncode == 127
    assert "no-such-command-xyz" in result.stderr
    [run] = live_server.wait_for_executions("missing", 1)
    assert run.status == "failed"
    assert run.exit_code == 127


def test_timeout_stops_the_command(live_server: ThreadedServer) -> None:
    result = chronos_exec(
        "--job",
        "slow",
        "--timeout",
        "0.5",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(30)",
        url=live_server.url,
        key=live_server.api_key,
    )
    assert result.returncode == 128 + signal.SIGTERM
    [run] = live_server.wait_for_executions("slow", 1)
    assert run.status == "timeout"


def test_large_output_is_truncated_in_the_record_not_on_the_terminal(
    recording_server: RecordingServer,
) -> None:
    script = "import sys; sys.stdout.write('x' * 50_000 + 'END')"
    result = chronos_exec(
        "--job", "big", "--", sys.executable, "-c", script, url=recording_server.url
    )
    assert result.returncode == 0
    assert len(result.stdout) == 50_003
    [final] = [
        e
        for r in recording_server.requests
        for e in r.body.get("executions", [])
        if e["status"] != "running"
    ]
    assert len(final["stdout"].encode()) <= 10_000
    assert final["stdout"].startswith("xxx")
    assert final["stdout"].endswith("END")


def test_unreachable_server_never_hangs_the_job(black_hole: BlackHole) -> None:
    started = time.monotonic()
    result = chronos_exec("--job", "cron", "--send-timeout", "1", "--", "true", url=black_hole.url)
    assert result.returncode == 0
    assert time.monotonic() - started < 10
    assert "could not deliver" in result.stderr


def test_no_api_key_still_runs_the_command(recording_server: RecordingServer) -> None:
    result = chronos_exec(
        "--job",
        "nokey",
        "--",
        sys.executable,
        "-c",
        "print(42)",
        url=recording_server.url,
        key=None,
    )
    assert result.returncode == 0
    assert result.stdout == "42\n"
    assert "CHRONOS_API_KEY" in result.stderr
    assert recording_server.requests == []


def test_report_waits_in_the_spool_when_the_server_is_down(
    recording_server: RecordingServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    recording_server.refuse()
    down = chronos_exec(
        "--job",
        "spooled",
        "--send-timeout",
        "1",
        "--",
        "true",
        url=recording_server.url,
        CHRONOS_SPOOL_DIR=str(spool),
    )
    assert down.returncode == 0
    assert list(spool.glob("*.batch"))
    recording_server.resume()
    up = chronos_exec(
        "--job", "spooled", "--", "true", url=recording_server.url, CHRONOS_SPOOL_DIR=str(spool)
    )
    assert up.returncode == 0
    finals = [
        e["execId"]
        for r in recording_server.requests
        for e in r.body.get("executions", [])
        if e["status"] == "success"
    ]
    assert len(finals) == 2
    assert len(set(finals)) == 2
    assert list(spool.glob("*.batch")) == []
