from __future__ import annotations

import importlib
import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import chronos_core
from chronos_core._frames import code_snippet, is_user_file, language_for_path, user_frame

FAKELIB = textwrap.dedent(
    '''
    """A stand-in for an installed third-party package."""


    def call(callback):
        return _dispatch(callback)


    def _dispatch(callback):
        return callback()


    def parse(value):
        if not value.isdigit():
            raise ValueError(f"not a number: {value!r}")
        return int(value)
    '''
)


@pytest.fixture
def fakelib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    site_packages = tmp_path / "site-packages"
    (site_packages / "fakelib").mkdir(parents=True)
    (site_packages / "fakelib" / "__init__.py").write_text(FAKELIB)
    monkeypatch.syspath_prepend(str(site_packages))
    module = importlib.import_module("fakelib")
    yield module
    sys.modules.pop("fakelib", None)


def _line_of(func: Callable[..., object], needle: str) -> int:
    lines, start = inspect.getsourcelines(func)
    for offset, line in enumerate(lines):
        if needle in line:
            return start + offset
    raise AssertionError(f"{needle!r} not in {func.__name__}")


def _raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


# User code: an entry point that goes through the library, which calls back into the user.
def failing_callback() -> int:
    rows: list[int] = []
    total = sum(rows)
    return 100 // total  # the failing user line


def run_job(lib: ModuleType) -> object:
    return lib.call(failing_callback)


def parse_input(lib: ModuleType) -> object:
    return lib.parse("twelve")  # the user line that called into the library


def test_error_in_a_user_callback_is_shown_at_the_callback(fakelib: ModuleType) -> None:
    error = _raised(lambda: run_job(fakelib))
    snippet = code_snippet(error)

    assert snippet is not None
    failing_line = _line_of(failing_callback, "100 // total")
    assert snippet.filename == __file__
    assert snippet.lineno == failing_line
    assert snippet.function == "failing_callback"
    assert snippet.language == "python"
    lines = snippet.text.splitlines()
    assert lines[0] == f'File "{__file__}", line {failing_line}, in failing_callback'
    marked = [line for line in lines if line.startswith(">")]
    assert marked == [f"> {failing_line} |     return 100 // total  # the failing user line"]
    # Five lines of context either side, numbered.
    assert lines[1].startswith(f"  {failing_line - 5} |")
    assert lines[-1].startswith(f"  {failing_line + 5} |")
    assert "fakelib" not in snippet.text


def test_error_raised_inside_the_library_is_shown_at_the_user_call(fakelib: ModuleType) -> None:
    error = _raised(lambda: parse_input(fakelib))
    snippet = code_snippet(error, context=1)

    assert snippet is not None
    assert snippet.function == "parse_input"
    assert snippet.lineno == _line_of(parse_input, 'lib.parse("twelve")')
    assert len(snippet.text.splitlines()) == 1 + 3
    assert 'lib.parse("twelve")' in snippet.text


def test_error_raised_inside_the_standard_library_is_shown_at_the_user_call() -> None:
    def load() -> object:
        return json.loads("{not json")

    snippet = code_snippet(_raised(load))
    assert snippet is not None
    assert snippet.function == "load"
    assert snippet.lineno == _line_of(load, "json.loads")


def test_without_any_user_frame_the_innermost_frame_is_used(fakelib: ModuleType) -> None:
    error = _raised(lambda: fakelib.parse("x"))
    assert error.__traceback__ is not None
    # Drop the frames of this file: what is left is all library code.
    tb = error.__traceback__
    while tb is not None and is_user_file(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next

    frame = user_frame(tb)
    assert frame is not None
    assert frame.function == "parse"
    assert "site-packages" in frame.filename


def test_error_that_was_never_raised_has_no_snippet() -> None:
    assert code_snippet(ValueError("constructed, not raised")) is None


def test_generated_code_is_not_the_users() -> None:
    namespace: dict[str, object] = {}
    exec(compile("def generated():\n    raise KeyError('k')\n", "<string>", "exec"), namespace)
    generated = namespace["generated"]
    assert callable(generated)

    def caller() -> object:
        return generated()

    snippet = code_snippet(_raised(caller))
    assert snippet is not None
    assert snippet.function == "caller"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        (__file__, True),
        (json.__file__, False),  # standard library
        (pytest.__file__, False),  # installed package
        (chronos_core.__file__, False),  # this SDK
        ("/srv/venv/lib/python3.11/dist-packages/x/y.py", False),
        ("<frozen importlib._bootstrap>", False),
        ("<string>", False),
        ("<stdin>", True),
    ],
)
def test_which_files_are_user_code(filename: str, expected: bool) -> None:
    assert is_user_file(filename) is expected


def test_language_from_extension() -> None:
    assert language_for_path("/app/jobs/report.py") == "python"
    assert language_for_path("deploy.sh") == "bash"
    assert language_for_path("notes.unknown") is None
