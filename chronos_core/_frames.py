"""Finding the user's own line in a traceback, and the code around it.

An error raised deep inside a library is most useful when shown at the line of the job that
called into it, so the frame shown is the innermost one that belongs to the application: not
this SDK, not the standard library, not an installed package, not generated code.
"""

from __future__ import annotations

import linecache
import os
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "DEFAULT_CONTEXT_LINES",
    "CodeSnippet",
    "code_snippet",
    "is_user_file",
    "language_for_path",
    "user_frame",
]

DEFAULT_CONTEXT_LINES = 5
# Minified or generated sources can have enormous lines; the snippet is for reading.
_MAX_LINE_CHARS = 300

_LANGUAGES = {
    ".py": "python",
    ".pyw": "python",
    ".pyx": "cython",
    ".sh": "bash",
    ".bash": "bash",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".rb": "ruby",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".php": "php",
    ".sql": "sql",
}

# Pseudo-files that hold what a person typed: those are the user's code.
_TYPED_CODE_PREFIXES = ("<stdin>", "<ipython-input-")
_OUR_PACKAGES = ("chronos_core", "chronos_integrations", "chronos_server")


@dataclass(frozen=True, slots=True)
class UserFrame:
    """Where in the source an error is reported."""

    filename: str
    lineno: int
    function: str
    module_globals: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CodeSnippet:
    """The source around the reported line: a `File "…", line N, in f` header, then lines."""

    filename: str
    lineno: int
    function: str
    text: str
    language: str | None


@cache
def _excluded_prefixes() -> tuple[str, ...]:
    paths: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(path)
            paths.add(os.path.realpath(path))
    root = Path(__file__).resolve().parent.parent
    paths.update(str(root / package) for package in _OUR_PACKAGES)
    return tuple(os.path.join(os.path.normcase(p), "") for p in paths)


@cache
def is_user_file(filename: str) -> bool:
    """Whether code in `filename` belongs to the application rather than to a library."""
    if filename.startswith("<"):
        return filename.startswith(_TYPED_CODE_PREFIXES)
    normalized = os.path.normcase(os.path.abspath(filename))
    parts = Path(normalized).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not normalized.startswith(_excluded_prefixes())


def user_frame(tb: TracebackType | None) -> UserFrame | None:
    """The innermost frame of `tb` in the user's code, else the innermost frame at all."""
    entries: list[TracebackType] = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if not entries:
        return None
    chosen = entries[-1]
    for entry in reversed(entries):
        if is_user_file(entry.tb_frame.f_code.co_filename):
            chosen = entry
            break
    frame = chosen.tb_frame
    return UserFrame(
        filename=frame.f_code.co_filename,
        lineno=chosen.tb_lineno,
        function=frame.f_code.co_name,
        module_globals=frame.f_globals,
    )


def language_for_path(path: str) -> str | None:
    """The language name for a source file, from its extension."""
    if path.startswith(_TYPED_CODE_PREFIXES):
        return "python"
    return _LANGUAGES.get(os.path.splitext(path)[1].lower())


def code_snippet(
    error: BaseException, *, context: int = DEFAULT_CONTEXT_LINES
) -> CodeSnippet | None:
    """The user's line where `error` surfaced, with `context` lines either side.

    Returns None when the error has no traceback (never raised). When the source cannot be
    read, the snippet is the header line alone.
    """
    frame = user_frame(error.__traceback__)
    if frame is None:
        return None
    header = f'File "{frame.filename}", line {frame.lineno}, in {frame.function}'
    linecache.checkcache(frame.filename)
    lines = linecache.getlines(frame.filename, frame.module_globals)
    body: list[str] = [header]
    if lines and 1 <= frame.lineno <= len(lines):
        first = max(1, frame.lineno - context)
        last = min(len(lines), frame.lineno + context)
        width = len(str(last))
        for number in range(first, last + 1):
            line = lines[number - 1].rstrip("\r\n")
            if len(line) > _MAX_LINE_CHARS:
                line = line[:_MAX_LINE_CHARS] + "…"
            marker = ">" if number == frame.lineno else " "
            body.append(f"{marker} {number:>{width}} | {line}".rstrip())
    return CodeSnippet(
        filename=frame.filename,
        lineno=frame.lineno,
        function=frame.function,
        text="\n".join(body),
        language=language_for_path(frame.filename),
    )
