"""What importing the RQ integration loads: what a worker and its horses need, nothing else.

A worker's heap is copied on write into every horse it forks, so each module it loads for
nothing costs page faults per job.
"""

from __future__ import annotations

import subprocess
import sys

from tests.core.test_public_api import HEAVY_MODULES, LAZY_MODULES

# What the worker leaves to its relay process: the exporter, the models, their libraries.
RELAYED_MODULES = [*HEAVY_MODULES, "pydantic_settings", "chronos_core._client"]
# What it loads once a run needs it (an error, output): the capture code.
CAPTURE_MODULES = ["chronos_core._capture", "chronos_core._frames", "chronos_core._redact"]
# What only the relay process runs.
RELAY_SIDE_MODULES = ["chronos_integrations.rq._relay_main", "chronos_integrations.rq._report"]


def test_importing_the_integration_leaves_the_rarely_used_modules_unloaded() -> None:
    probe = "import chronos_integrations.rq, sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(result.stdout.split())
    assert "chronos_integrations.rq._worker" in loaded
    assert not loaded & set(LAZY_MODULES + RELAYED_MODULES + CAPTURE_MODULES + RELAY_SIDE_MODULES)
