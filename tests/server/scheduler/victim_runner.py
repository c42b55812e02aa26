"""A server-mode `ChronosRunner` in a process of its own (a test freezes and kills it).

python -m tests.server.scheduler.victim_runner <endpoint> <api key> <job id>
"""

from __future__ import annotations

import sys

from chronos_core.runner import ChronosRunner


def main() -> None:
    endpoint, api_key, job_id = sys.argv[1:4]
    runner = ChronosRunner(mode="server", api_key=api_key, endpoint=endpoint, reconnect_delay=0.1)
    runner.register(job_id, lambda: print("ran", flush=True), overlap="allow")
    runner.run_forever()


if __name__ == "__main__":
    main()
