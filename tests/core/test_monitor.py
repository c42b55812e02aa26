from __future__ import annotations

import asyncio
import inspect

import pytest

from chronos_core._models import ExecutionStatus
from chronos_core._monitor import monitor
from tests.core.conftest import BrokenSink, ListSink


def test_sync_function_result_and_event(sink: ListSink) -> None:
    @monitor("report", sink=sink, labels=iter(["nightly"]))
    def report(rows: int, *, scale: int = 1) -> list[int]:
        return [rows * scale]

    assert report(3, scale=2) == [6]
    assert report(4) == [4]
    assert report.__name__ == "report"
    assert [e.job_id for e in sink.events] == ["report", "report"]
    assert all(e.status is ExecutionStatus.SUCCESS for e in sink.events)
    assert [e.labels for e in sink.events] == [["nightly"], ["nightly"]]
    assert sink.events[0].exec_id != sink.events[1].exec_id


def test_job_id_defaults_to_the_qualified_name(sink: ListSink) -> None:
    @monitor(sink=sink)
    def cleanup() -> None:
        pass

    cleanup()
    expected = f"{__name__}.test_job_id_defaults_to_the_qualified_name.<locals>.cleanup"
    assert sink.only.job_id == expected


def test_bare_decorator(sink: ListSink) -> None:
    @monitor
    def plain() -> str:
        return "ok"

    assert plain() == "ok"  # no sink: captured but not recorded


def test_sync_exception_propagates_unchanged(sink: ListSink) -> None:
    error = LookupError("no such customer")

    @monitor("sync-job", sink=sink)
    def job() -> None:
        raise error

    with pytest.raises(LookupError) as raised:
        job()
    assert raised.value is error
    assert sink.only.status is ExecutionStatus.FAILED
    assert sink.only.error_message == "no such customer"


async def test_async_function_result_and_errors(sink: ListSink) -> None:
    @monitor("async-job", sink=sink)
    async def job(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise RuntimeError("async failure")
        return "done"

    assert await job(False) == "done"
    with pytest.raises(RuntimeError, match="async failure"):
        await job(True)
    assert [e.status for e in sink.events] == [ExecutionStatus.SUCCESS, ExecutionStatus.FAILED]
    assert inspect.iscoroutinefunction(job)


def test_a_broken_sink_does_not_change_the_result() -> None:
    @monitor("job", sink=BrokenSink(), emit_running=True)
    def job() -> int:
        return 7

    assert job() == 7


def test_bad_options_fail_when_decorating() -> None:
    with pytest.raises(ValueError, match="attempt"):
        monitor("job", attempt=0)(lambda: None)
    with pytest.raises(ValueError, match="exec_id"):
        monitor("job", exec_id="fixed")
