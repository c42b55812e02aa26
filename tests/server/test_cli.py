"""`chronos server` from a clean directory, as a new user runs it; `chronos keys`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import free_port

CHRONOS = [str(Path(sys.executable).parent / "chronos")]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _chronos(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [*CHRONOS, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [*CHRONOS, "server", "--port", str(port)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "listening on" in line:
                break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("\n".join(lines))
        yield process, lines, port
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def test_first_start_prints_a_key_and_a_working_command(
    started: tuple[subprocess.Popen[str], list[str], int], tmp_path: Path
) -> None:
    _, lines, port = started
    assert (tmp_path / "chronos.db").exists()
    keys = [line.strip() for line in lines if re.fullmatch(r"\s*chr_[0-9a-f]{8}_\S+", line)]
    assert len(keys) == 1
    [curl] = [line for line in lines if line.startswith("curl ")]
    assert f"127.0.0.1:{port}" in curl
    sent = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {
        "success": True,
        "ingested": 1,
        "duplicates": 0,
        "errors": [],
    }
    listed = httpx.get(
        f"http://127.0.0.1:{port}/api/jobs/hello/executions", headers={"x-api-key": keys[0]}
    )
    assert [e["status"] for e in listed.json()] == ["success"]
    # `chronos keys list` shows the key by prefix, used, never the secret.
    output = _chronos("keys", "list", cwd=tmp_path)
    assert keys[0].split("_")[1] in output
    assert keys[0] not in output
    assert "active" in output


def test_second_start_prints_no_key(tmp_path: Path) -> None:
    _chronos("keys", "create", "--name", "first", cwd=tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [*CHRONOS, "server", "--port", str(port)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        head = []
        for line in process.stdout:
            head.append(line)
            if "listening on" in line:
                break
        assert not any("chr_" in line for line in head)
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = _chronos("keys", "create", "--name", "ci", cwd=tmp_path)
    [key] = set(re.findall(r"chr_[0-9a-f]{8}_[A-Za-z0-9_-]+", created))
    prefix = key.split("_")[1]
    assert "ci" in _chronos("keys", "list", cwd=tmp_path)
    assert "revoked" in _chronos("keys", "revoke", prefix, cwd=tmp_path)
    listed = _chronos("keys", "list", cwd=tmp_path)
    assert re.search(rf"{prefix}.*revoked", listed)
    failed = subprocess.run(
        [*CHRONOS, "keys", "revoke", prefix],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode != 0
    assert "no active key" in failed.stderr


def test_db_migrate_on_postgres(postgres_dsn: str, tmp_path: Path) -> None:
    env = {**_env(), "CHRONOS_POSTGRES_DSN": postgres_dsn}
    done = subprocess.run(
        [*CHRONOS, "db", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "0001_accounts" in done.stdout or "up to date" in done.stdout
    again = subprocess.run(
        [*CHRONOS, "db", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "up to date" in again.stdout
