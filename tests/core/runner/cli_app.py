"""A runner module for `chronos run tests.core.runner.cli_app:runner` in the CLI test."""

from __future__ import annotations

import os
import time
from pathlib import Path

from chronos_core.runner import ChronosRunner

runner = ChronosRunner()
MARKER = Path(os.environ.get("RUNNER_TEST_MARKER", "/nonexistent/marker"))


@runner.job("cli-slow", interval_seconds=0.5, overlap="skip")
def slow() -> None:
    MARKER.touch()  # tells the test a run is in progress
    time.sleep(1.5)
    print("finished after SIGTERM")


def make_runner() -> ChronosRunner:
    """A factory: `chronos run tests.core.runner.cli_app:make_runner` calls it."""
    return ChronosRunner()
