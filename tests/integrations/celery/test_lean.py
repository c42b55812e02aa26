"""`LeanRun`: the event a lean task run turns into, built either way, is the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chronos_core import ExecutionEvent, Redactor
from chronos_integrations.celery._runs import LeanRun


def _run(**options: object) -> LeanRun:
    values: dict[str, object] = {
        "sink": None,
        "exec_id": "0b5c-task-id",
        "attempt": 1,
        "max_log_bytes": 10_000,
        "job_version": None,
        "app_version": None,
        "metadata": None,
        "queue": "celery",
        "worker": "celery@host",
        "scheduled_for": None,
        "redactor": Redactor.default(),
    }
    values.update(options)
    return LeanRun("t.add", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"queue": None, "worker": None, "attempt": 3, "exec_id": "0b5c-task-id:3"},
        {"job_version": "2.1", "app_version": "abc123", "metadata": {"beatEntry": "nightly"}},
        {"scheduled_for": datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)},
        {"scheduled_for": datetime(2026, 1, 2, 3, 4, 5)},  # naive: taken as UTC
        {"metadata": {"args": "(1, 'é')"}},
    ],
)
def test_wire_form_is_the_events(options: dict[str, object]) -> None:
    run = _run(**options)
    run.finish()
    wire = run.wire()
    assert wire == run.event().to_wire()
    # What the exporter sends parses back into the same event.
    assert ExecutionEvent.model_validate(json.loads(json.dumps(wire))).to_wire() == wire


def test_a_finished_run_is_not_finished_again() -> None:
    class Keep:
        def __init__(self) -> None:
            self.events: list[ExecutionEvent] = []

        def record(self, event: ExecutionEvent) -> bool:
            self.events.append(event)
            return True

    sink = Keep()
    run = _run(sink=sink)
    assert not run.finished
    run.finish()
    run.finish()
    assert run.finished
    assert [e.exec_id for e in sink.events] == ["0b5c-task-id"]
    assert sink.events[0].finished_at is not None
    assert sink.events[0].finished_at >= sink.events[0].started_at


def test_ids_beyond_the_schema_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="exec_id"):
        _run(exec_id="x" * 257)
