"""examples/sdk_quickstart.py runs against a real server and its runs arrive as described."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.live_server import ThreadedServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sdk_quickstart.py"


def test_quickstart_example(live_server: ThreadedServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
    env.update(CHRONOS_API_KEY=live_server.api_key, CHRONOS_API_URL=live_server.url)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "delivered: True" in result.stdout

    runs = live_server.wait_for_executions("quickstart-sum", 2)
    by_status = {run.status: run for run in runs}
    assert by_status["success"].stdout == "summing 3 rows\n"
    failed = by_status["failed"]
    assert failed.error_type == "ValueError"
    assert failed.code_snippet is not None
    assert "return int(row)" in failed.code_snippet
    assert failed.code_language == "python"
    [block] = live_server.wait_for_executions("quickstart-block", 1)
    assert block.labels == ["manual"]
    assert block.stdout == "inside a captured block\n"
    [timed_out] = live_server.wait_for_executions("quickstart-callbacks", 1)
    assert timed_out.status == "timeout"
    assert timed_out.error_message == "took longer than 30s"
    assert len(live_server.wait_for_executions("quickstart-async", 1)) == 1
    assert {job.id for job in live_server.jobs()} >= {"quickstart-sum", "quickstart-async"}
