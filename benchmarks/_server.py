"""`chronos server` in a subprocess, for the benchmarks that measure it over HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["Server", "free_port"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`chronos server` started from `directory`, with the API key it printed on first start."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.directory = directory
        chronos = str(Path(sys.executable).parent / "chronos")
        self.process = subprocess.Popen(
            [chronos, "server", "--port", str(self.port), "--log-level", "warning"],
            cwd=directory,
            env={
                **os.environ,
                "CHRONOS_RATE_LIMIT_PER_MINUTE": "0",
                **env,
                "PYTHONUNBUFFERED": "1",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.key = ""
        for line in self.process.stdout:
            found = re.search(r"chr_[0-9a-f]{8}_[A-Za-z0-9_-]+", line)
            if found and not self.key:
                self.key = found.group(0)
            if "listening on" in line:
                break
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                if httpx.get(self.url + "/api/ready").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        if self.process.stdout is not None:
            self.process.stdout.close()
