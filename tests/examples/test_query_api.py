"""examples/query_api.py answers from a server that holds real runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from chronos_core import BatchExporter, JobDefinition, capture
from tests.support.live_server import ThreadedServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "query_api.py"


def _divide(n: int) -> float:
    return 1 / n


def test_query_example_reports_jobs_failures_and_percentiles(live_server: ThreadedServer) -> None:
    exporter = BatchExporter(api_key=live_server.api_key, endpoint=live_server.url)
    exporter.register_jobs([JobDefinition(id="divide", name="Divide", schedule="*/5 * * * *")])
    for n in (1, 2, 0):
        time.sleep(0.005)  # distinct start milliseconds: "last" is well defined
        try:
            with capture("divide", sink=exporter):
                _divide(n)
        except ZeroDivisionError:
            pass
    assert exporter.flush(10)
    live_server.wait_for_executions("divide", 3)
    exporter.shutdown(1)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
    env.update(CHRONOS_API_KEY=live_server.api_key, CHRONOS_API_URL=live_server.url)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "divide" in out
    assert "last=failed" in out
    assert "success=67%" in out
    assert "failed runs in the last day: 1" in out
    assert "ZeroDivisionError: division by zero" in out
    assert "return 1 / n" in out
    assert "runs=3 failures=1" in out
    assert "most failing: divide failures=1" in out
