"""Cost of capturing one run, against baselines measured in the same process.

    .venv/bin/python benchmarks/capture_overhead.py

Prints microseconds per captured no-op run (start + finish, building the event and handing it
to an in-memory sink), with and without console capture, and the ratio to validating one
`ExecutionEvent` with pydantic, so that numbers from different machines can be compared.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from datetime import UTC, datetime

from chronos_core import _console
from chronos_core._capture import RunCapture
from chronos_core._models import ExecutionEvent, ExecutionStatus
from chronos_core._redact import Redactor

RUNS = 20_000


class _ListSink:
    def __init__(self) -> None:
        self.events: list[ExecutionEvent] = []

    def record(self, event: ExecutionEvent) -> bool:
        self.events.append(event)
        return True


def _per_call_us(func: Callable[[], object]) -> float:
    func()  # warm caches (hostname, app version)
    return min(timeit.repeat(func, number=RUNS, repeat=5)) / RUNS * 1e6


def main() -> None:
    sink = _ListSink()
    now = datetime.now(UTC)

    def validate_event() -> object:
        return ExecutionEvent(
            exec_id="job-1:1", job_id="job-1", status=ExecutionStatus.SUCCESS, started_at=now
        )

    def plain_run() -> None:
        with RunCapture("job-1", sink=sink):
            pass
        sink.events.clear()

    def console_run() -> None:
        with RunCapture("job-1", sink=sink, capture_console=True):
            pass
        sink.events.clear()

    text = "processed batch 17 of 40, 1204 rows, nothing unusual\n" * 200
    redactor = Redactor.default()

    baseline = _per_call_us(validate_event)
    results = {
        "validate one ExecutionEvent (baseline)": baseline,
        "captured no-op run": _per_call_us(plain_run),
        "captured no-op run, console capture": _per_call_us(console_run),
        f"redact {len(text):,} chars without secrets": _per_call_us(lambda: redactor.redact(text)),
    }
    _console.uninstall()
    for label, micros in results.items():
        print(f"{label:<45} {micros:8.2f} us   x{micros / baseline:5.2f}")


if __name__ == "__main__":
    main()
