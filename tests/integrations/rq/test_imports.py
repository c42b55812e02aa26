"""What importing the RQ integration loads: what a worker and its horses need, nothing else.

A worker's heap is copied on write into every horse it forks, so each module it loads for
nothing costs page faults per job.
"""

from __future__ import annotations

import os

from tests.core.test_public_api import HEAVY_MODULES, LAZY_MODULES
from tests.integrations.rq.conftest import REDIS_URL, run_probe

# What the worker leaves to its relay process: the exporter, the models, their libraries.
RELAYED_MODULES = [*HEAVY_MODULES, "pydantic_settings", "chronos_core._client"]
# What it loads once a run needs it (an error, output): the capture code.
CAPTURE_MODULES = ["chronos_core._capture", "chronos_core._frames", "chronos_core._redact"]
# What only the relay process runs.
RELAY_SIDE_MODULES = ["chronos_integrations.rq._relay_main", "chronos_integrations.rq._report"]


def test_importing_the_integration_leaves_the_rarely_used_modules_unloaded() -> None:
    probe = "import chronos_integrations.rq, sys\nprint('\\n'.join(sys.modules))"
    result = run_probe(probe)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(result.stdout.split())
    assert "chronos_integrations.rq._worker" in loaded
    assert not loaded & set(LAZY_MODULES + RELAYED_MODULES + CAPTURE_MODULES + RELAY_SIDE_MODULES)


def test_a_worker_set_up_to_capture_the_console_loads_its_module_when_it_starts() -> None:
    # At setup, among the worker's long-lived objects, not at its first job (each horse then
    # writes fewer pages); without console capture, never.
    probe = f"""
import sys
from redis import Redis
from chronos_integrations.rq import ChronosWorker

worker = ChronosWorker(["setup"], connection=Redis.from_url({REDIS_URL!r}))
setup = worker._chronos()
print(setup is not None and setup[1], "chronos_core._console" in sys.modules)
worker._chronos_link.close(0)
"""
    env = {
        **os.environ,
        "CHRONOS_API_KEY": "k",
        "CHRONOS_API_URL": "http://127.0.0.1:9",
        "CHRONOS_SHUTDOWN_TIMEOUT": "0",
    }
    for capture, expected in (("true", ["True", "True"]), ("false", ["False", "False"])):
        done = run_probe(probe, env={**env, "CHRONOS_CAPTURE_CONSOLE": capture})
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == expected, done.stderr[-3000:]
