"""Capture runs of plain Python functions and send them to a Chronos server.

    chronos server                       # in another terminal; prints an API key
    export CHRONOS_API_KEY=chr_...
    python examples/sdk_quickstart.py

Shows the three ways to capture a run (`capture`, `@monitor`, `RunCapture`), console capture,
an error reported with the code around it, and the exporter's stats at the end.
"""

from __future__ import annotations

import asyncio

from chronos_core import (
    BatchExporter,
    ExecutionStatus,
    JobDefinition,
    RunCapture,
    Source,
    capture,
    monitor,
)

exporter = BatchExporter()  # CHRONOS_API_KEY / CHRONOS_API_URL from the environment


def parse_row(row: str) -> int:
    return int(row)  # fails on the bad row: the snippet points here


@monitor("quickstart-sum", sink=exporter, capture_console=True)
def sum_rows(rows: list[str]) -> int:
    print(f"summing {len(rows)} rows")
    return sum(parse_row(row) for row in rows)


@monitor("quickstart-async", sink=exporter)
async def fetch_report() -> str:
    await asyncio.sleep(0.01)
    return "report"


def main() -> None:
    exporter.client.register_jobs(
        [
            JobDefinition(id="quickstart-sum", name="Sum rows", schedule="*/5 * * * *"),
            JobDefinition(id="quickstart-async", name="Fetch report", schedule="0 * * * *"),
        ]
    )
    print("sum:", sum_rows(["1", "2", "3"]))
    try:
        sum_rows(["1", "two"])
    except ValueError as error:
        print("failed as expected:", error)
    print(asyncio.run(fetch_report()))

    with capture("quickstart-block", sink=exporter, capture_console=True) as run:
        run.labels.append("manual")
        print("inside a captured block")

    # For frameworks whose start and end arrive in different callbacks.
    run = RunCapture("quickstart-callbacks", sink=exporter, source=Source.RUNNER).start()
    run.finish(ExecutionStatus.TIMEOUT, error_message="took longer than 30s")

    delivered = exporter.shutdown(5)
    print("delivered:", delivered, exporter.stats())


if __name__ == "__main__":
    main()
