from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from chronos_core import _versions
from chronos_core._config import ChronosSettings
from chronos_core._versions import detect_app_version, signature_hash


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CHRONOS_APP_VERSION", raising=False)
    _versions._clear_caches()
    yield
    _versions._clear_caches()


def _fake_main(
    monkeypatch: pytest.MonkeyPatch, *, spec_name: str | None = None, file: str | None = None
) -> None:
    main = types.ModuleType("__main__")
    main.__spec__ = ModuleSpec(spec_name, None) if spec_name else None
    if file is not None:
        main.__file__ = file
    monkeypatch.setitem(sys.modules, "__main__", main)


def test_explicit_version_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_APP_VERSION", "from-env")
    assert detect_app_version("9.9.9") == "9.9.9"


def test_environment_through_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_APP_VERSION", "2.0.1")
    monkeypatch.delenv("CHRONOS_API_KEY", raising=False)  # not needed to read the version
    assert detect_app_version() == "2.0.1"
    assert detect_app_version(settings=ChronosSettings(app_version="3.0")) == "3.0"


def test_distribution_of_a_main_package(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_main(monkeypatch, spec_name="croniter.__main__")  # `python -m croniter`
    assert detect_app_version() == importlib.metadata.version("croniter")


def test_distribution_declaring_the_console_script(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_main(monkeypatch, file=str(Path(sys.executable).parent / "httpx"))
    assert detect_app_version() == importlib.metadata.version("httpx")


def test_task_runners_are_not_the_application(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_main(monkeypatch, spec_name="celery.__main__")
    assert detect_app_version() is None


def test_script_inside_a_package_that_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "myproj" / "jobs"
    package.mkdir(parents=True)
    (tmp_path / "myproj" / "__init__.py").touch()
    (package / "__init__.py").touch()
    (package / "run.py").touch()
    assert _versions._top_level_package(str(package / "run.py")) == "myproj"
    _fake_main(monkeypatch, file=str(package / "run.py"))
    assert detect_app_version() is None


def test_detection_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_APP_VERSION", "1.0")
    assert detect_app_version() == "1.0"
    monkeypatch.setenv("CHRONOS_APP_VERSION", "2.0")
    assert detect_app_version() == "1.0"


JOB_SOURCE = textwrap.dedent(
    """
    def nightly_report(rows):
        kinds = {"daily", "weekly", "monthly"}
        return [row for row in rows if row in kinds]
    """
)
HASH_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from chronos_core._versions import signature_hash
    if sys.argv[2] == "module":
        import jobmod
        print(signature_hash(jobmod.nightly_report))
    else:  # no source file: the compiled code is hashed
        namespace = {}
        exec(compile(open(sys.argv[1] + "/jobmod.py").read(), "<generated>", "exec"), namespace)
        print(signature_hash(namespace["nightly_report"]))
    """
)


def _hash_in_subprocess(directory: Path, mode: str, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    result = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT, str(directory), mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


@pytest.mark.parametrize("mode", ["module", "code"])
def test_signature_hash_is_stable_across_processes_and_follows_the_code(
    tmp_path: Path, mode: str
) -> None:
    (tmp_path / "jobmod.py").write_text(JOB_SOURCE)
    first = _hash_in_subprocess(tmp_path, mode, seed="1")
    second = _hash_in_subprocess(tmp_path, mode, seed="2")
    assert first == second
    assert len(first) == 16
    assert int(first, 16) >= 0

    (tmp_path / "jobmod.py").write_text(JOB_SOURCE.replace('"monthly"', '"yearly"'))
    assert _hash_in_subprocess(tmp_path, mode, seed="1") != first


def test_signature_hash_of_wrapped_and_bound_functions() -> None:
    import functools

    def job() -> int:
        return 1

    @functools.wraps(job)
    def wrapper() -> int:
        return job()

    class Tasks:
        def run(self) -> int:
            return 2

    assert signature_hash(wrapper) == signature_hash(job)
    assert signature_hash(Tasks().run) == signature_hash(Tasks.run)
    assert signature_hash(Tasks.run) != signature_hash(job)
