"""`chronos jobs`, `chronos runs` and `chronos run-info` against the real server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chronos_core import ChronosClient, JobDefinition
from chronos_core.cli import main
from tests.support.live_server import ThreadedServer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def runs(count: int, job: str = "etl") -> list[dict[str, Any]]:
    return [
        {
            "execId": f"{job}:1.0:{i}",
            "jobId": job,
            "status": "failed" if i % 5 == 0 else "success",
            "startedAt": (T0 + timedelta(seconds=i)).isoformat(),
            "durationMs": 100 + i,
            "errorMessage": "boom" if i % 5 == 0 else None,
            "stdout": f"run {i}\n",
        }
        for i in range(count)
    ]


@pytest.fixture
def seeded(live_server: ThreadedServer) -> ThreadedServer:
    with ChronosClient(api_key=live_server.api_key, endpoint=live_server.url) as client:
        client.register_jobs([JobDefinition(id="etl", name="ETL", schedule="*/5 * * * *")])
        client.send_executions(runs(25))
    return live_server


def chronos(server: ThreadedServer, *args: str) -> str:
    result = CliRunner().invoke(
        main, [*args, "--api-key", server.api_key, "--endpoint", server.url]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_jobs_table_and_json(seeded: ThreadedServer) -> None:
    table = chronos(seeded, "jobs")
    header, row = table.splitlines()[:2]
    assert header.split() == [
        "JOB",
        "SCHEDULE",
        "LAST",
        "RUN",
        "STATUS",
        "NEXT",
        "RUN",
        "RUNS",
        "SUCCESS",
        "P95",
    ]
    assert row.startswith("etl")
    assert "80.0%" in row
    data = json.loads(chronos(seeded, "jobs", "--json"))
    assert data[0]["stats"]["runs"] == 25


def test_runs_filters_and_run_info(seeded: ThreadedServer) -> None:
    lines = chronos(seeded, "runs", "--status", "failed", "--limit", "3").splitlines()
    assert len(lines) == 4
    assert all(" failed " in line for line in lines[1:])
    assert "boom" in lines[1]
    data = json.loads(chronos(seeded, "runs", "--job", "etl", "--limit", "30", "--json"))
    assert len(data) == 25
    info = chronos(seeded, "run-info", "etl:1.0:20")
    assert "status       failed" in info
    assert "-- stdout --\nrun 20" in info
    missing = CliRunner().invoke(
        main, ["run-info", "nope", "--api-key", seeded.api_key, "--endpoint", seeded.url]
    )
    assert missing.exit_code == 1
    assert "404" in missing.output


def test_runs_follow_streams_new_runs(seeded: ThreadedServer, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "chronos"),
            "runs",
            "--follow",
            "--json",
            "--limit",
            "1",
            "--api-key",
            seeded.api_key,
            "--endpoint",
            seeded.url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["execId"] == "etl:1.0:24"
        time.sleep(1.0)  # the stream subscribes after the listing
        with ChronosClient(api_key=seeded.api_key, endpoint=seeded.url) as client:
            client.send_executions(runs(1, job="fresh"))
        live = json.loads(process.stdout.readline())
        assert live["jobId"] == "fresh"
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
