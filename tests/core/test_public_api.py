"""The public surface of `chronos_core` is what `__all__` lists, and it changes on purpose only."""

from __future__ import annotations

import subprocess
import sys

import pytest

import chronos_core

PUBLIC = [
    "AnalyticsSummary",
    "AsyncChronosAPI",
    "AsyncChronosClient",
    "AuthenticationError",
    "BatchExporter",
    "CaptureOptions",
    "ChronosAPI",
    "ChronosClient",
    "ChronosError",
    "ChronosRunner",
    "ChronosSettings",
    "ConfigurationError",
    "ConnectError",
    "EventSink",
    "ExecutionBatch",
    "ExecutionEvent",
    "ExecutionIngested",
    "ExecutionPage",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExporterStats",
    "HTTPStatusError",
    "IngestResult",
    "ItemError",
    "JobDefinition",
    "JobDetail",
    "JobRanking",
    "JobRegistration",
    "JobSummary",
    "JobTrigger",
    "Redactor",
    "RegisterResult",
    "RejectedError",
    "RequestTimeout",
    "RetryPolicy",
    "RetryableStatusError",
    "RunCapture",
    "RunMode",
    "RunStats",
    "Source",
    "Spool",
    "TimeSeries",
    "TimeSeriesPoint",
    "TransportError",
    "VersionComparison",
    "VersionSummary",
    "__version__",
    "capture",
    "configure",
    "current_trace_id",
    "detect_app_version",
    "get_exporter",
    "monitor",
    "signature_hash",
    "truncate_text",
]


def test_all_is_pinned_and_sorted() -> None:
    assert chronos_core.__all__ == PUBLIC
    assert sorted(PUBLIC) == PUBLIC


def test_every_public_name_exists_and_is_documented() -> None:
    for name in PUBLIC:
        value = getattr(chronos_core, name)
        if name != "__version__":
            assert (getattr(value, "__doc__", None) or "").strip(), f"{name} has no docstring"


# Imported on first use (PEP 562): `import chronos_core` loads none of them; a worker that
# only captures and exports runs does not load the runner or the query API.
LAZY_MODULES = [
    "chronos_core._monitor",
    "chronos_core._query",
    "chronos_core._read_models",
    "chronos_core.runner",
    "croniter",
]


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


# What only exporting and building models needs.
HEAVY_MODULES = ["chronos_core._exporter", "chronos_core._models", "httpx", "pydantic"]


def test_importing_the_package_loads_nothing_else() -> None:
    loaded = _modules_after("import chronos_core")
    assert not loaded & set(LAZY_MODULES + HEAVY_MODULES)
    assert "chronos_core._version" in loaded


def test_capturing_a_run_loads_neither_pydantic_nor_httpx() -> None:
    # What a forked RQ work horse does with a run that failed and printed: the fields, made
    # in plain Python, no model.
    loaded = _modules_after(
        "from chronos_core import ExecutionStatus\n"
        "from chronos_core._capture import RunCapture\n"
        "run = RunCapture('job', app_version='1', capture_console=True).start()\n"
        "print('out')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError as exc:\n"
        "    fields = run.conclude(error=exc)\n"
        "assert fields['status'] is ExecutionStatus.FAILED and fields['error_stack'], fields\n"
        "assert fields['stdout'] == 'out\\n', fields"
    )
    assert not loaded & set(HEAVY_MODULES + LAZY_MODULES + ["pydantic_settings"])


def test_exporting_loads_the_exporter_and_not_the_rarely_used_modules() -> None:
    loaded = _modules_after("from chronos_core import BatchExporter")
    assert "chronos_core._exporter" in loaded
    assert not loaded & set(LAZY_MODULES)


def test_lazy_names_load_on_first_use() -> None:
    loaded = _modules_after("from chronos_core import ChronosRunner, ChronosAPI, monitor")
    assert {"chronos_core.runner", "chronos_core._query", "chronos_core._monitor"} <= loaded


def test_lazy_names_are_the_modules_objects() -> None:
    from chronos_core import _monitor, _query, _read_models, runner

    assert chronos_core.ChronosRunner is runner.ChronosRunner
    assert chronos_core.ChronosAPI is _query.ChronosAPI
    assert chronos_core.AsyncChronosAPI is _query.AsyncChronosAPI
    assert chronos_core.JobDetail is _read_models.JobDetail
    assert chronos_core.monitor is _monitor.monitor


def test_dir_lists_every_public_name() -> None:
    assert set(PUBLIC) <= set(dir(chronos_core))


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = chronos_core.no_such_name  # type: ignore[attr-defined]
    assert not hasattr(chronos_core, "no_such_name")
