"""Per-run capture of what a job prints, with several runs in flight at once.

`sys.stdout` and `sys.stderr` are wrapped once by a stream that passes every write through
unchanged and also copies it to the run active in the *current context* (a `ContextVar`), so
runs in different threads or asyncio tasks each get only their own output, and output from a
context with no run (the exporter's thread, another thread's logging) is only passed through.
A run started inside another also feeds the outer one.

A process that runs one job at a time from start to end, such as an RQ work horse, can
instead capture the whole process (`begin_process`): every write from a context with no run
of its own goes there. The worker begins it once, paused, and each horse it forks switches
its copy on around its job, and the worker's context holds no capture for the horses to
carry.

What is not seen: writes to `sys.stdout.buffer`, to file descriptors directly (child
processes, C extensions), and to streams that were looked up before installation (a logging
handler keeps the `sys.stderr` it was built with). If something replaces `sys.stdout` after
us, it wins; the next run to start wraps whatever is there then.
"""

from __future__ import annotations

import io
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextvars import ContextVar, Token
from typing import Any, Literal, TextIO

from chronos_core._truncate import truncate_parts

__all__ = ["BoundedText", "ConsoleCapture", "install", "is_installed", "uninstall"]

StreamName = Literal["stdout", "stderr"]

_active: ContextVar[ConsoleCapture | None] = ContextVar("chronos_console_capture", default=None)
# The capture of writes from contexts that have none (`ConsoleCapture.begin_process`).
_process: ConsoleCapture | None = None
_install_lock = threading.Lock()


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


class BoundedText:
    """An append-only text that keeps its first and last `max_bytes`, counting the rest.

    Sizes are tracked in characters (cheap), and a character is at least one byte, so keeping
    `max_bytes` characters at each end always covers what truncation to `max_bytes` keeps.
    """

    __slots__ = ("_head", "_head_chars", "_limit", "_omitted_bytes", "_tail", "_tail_chars")

    def __init__(self, max_bytes: int) -> None:
        self._limit = max(0, max_bytes)
        self._head: list[str] = []
        self._head_chars = 0
        self._tail: deque[str] = deque()
        self._tail_chars = 0
        self._omitted_bytes = 0

    def append(self, text: str) -> None:
        """Add `text` at the end, dropping from the middle beyond the bound."""
        limit = self._limit
        if not text or not limit:
            return
        room = limit - self._head_chars
        if room > 0:
            if len(text) <= room:
                self._head.append(text)
                self._head_chars += len(text)
                return
            self._head.append(text[:room])
            self._head_chars = limit
            text = text[room:]
        tail = self._tail
        tail.append(text)
        self._tail_chars += len(text)
        while self._tail_chars - len(tail[0]) >= limit:
            dropped = tail.popleft()
            self._tail_chars -= len(dropped)
            self._omitted_bytes += _utf8_len(dropped)
        excess = self._tail_chars - limit
        if excess > 0:
            first = tail[0]
            self._omitted_bytes += _utf8_len(first[:excess])
            tail[0] = first[excess:]
            self._tail_chars = limit

    def parts(self) -> tuple[str, str, int]:
        """The kept head, the kept tail, and how many UTF-8 bytes between them were dropped."""
        return "".join(self._head), "".join(self._tail), self._omitted_bytes

    def text(self, max_bytes: int | None = None) -> str:
        """Everything kept, truncated to `max_bytes` (default: the bound) with a marker."""
        head, tail, omitted = self.parts()
        return truncate_parts(head, tail, self._limit if max_bytes is None else max_bytes, omitted)

    def __bool__(self) -> bool:
        return bool(self._head_chars)


class ConsoleCapture:
    """What one run printed: `begin()` in the run's context, `end()` when it finishes.

    `paused` (default False) passes writes through without keeping them, for a capture set
    up once and switched on only while a job runs (an RQ worker's, in each work horse).
    `written` tells whether anything was written while it captured (kept or not, by the
    bound), in one attribute read and no call: in a work horse each object touched is a page
    copy.
    """

    __slots__ = ("_ended", "_lock", "_parent", "_token", "paused", "stderr", "stdout", "written")

    def __init__(self, max_bytes: int) -> None:
        self.stdout = BoundedText(max_bytes)
        self.stderr = BoundedText(max_bytes)
        self._lock = threading.Lock()
        self._parent: ConsoleCapture | None = None
        self._token: Token[ConsoleCapture | None] | None = None
        self._ended = False
        self.paused = False
        self.written = False

    def begin(self) -> ConsoleCapture:
        """Install the stream wrappers if needed and send this context's output here."""
        install()
        self._parent = _active.get() or _process
        self._token = _active.set(self)
        return self

    def begin_process(self) -> ConsoleCapture:
        """Install the stream wrappers if needed and send here what every context without a
        capture of its own writes, in any thread: for a process that runs one job at a time
        (see the module's docstring). Replaces a process capture begun before."""
        global _process
        install()
        self._parent = None
        _process = self
        return self

    def end(self) -> None:
        """Stop capturing; later writes (even from contexts copied earlier) are not kept."""
        global _process
        self._ended = True
        if _process is self:
            _process = None
        token, self._token = self._token, None
        if token is None:
            return
        try:
            _active.reset(token)
        except ValueError:
            # Ended from another context than it began in (a callback-based integration):
            # only undo what is visible here.
            if _active.get() is self:
                _active.set(self._parent)

    def _record(self, name: StreamName, text: str) -> None:
        if not text:
            return  # nothing written: `written` stays as it was
        capture: ConsoleCapture | None = self
        while capture is not None:
            if not capture._ended and not capture.paused:
                with capture._lock:
                    (capture.stdout if name == "stdout" else capture.stderr).append(text)
                    capture.written = True
            capture = capture._parent


class _ConsoleStream:
    """Stands in for `sys.stdout`/`sys.stderr`: passes everything through, copies to the run."""

    def __init__(self, stream: TextIO, name: StreamName) -> None:
        self._stream = stream
        self._name: StreamName = name

    @property
    def wrapped(self) -> TextIO:
        """The stream every write is passed to."""
        return self._stream

    def write(self, text: str) -> int:
        """Write to the real stream, and keep a copy for the current context's run."""
        written = self._stream.write(text)
        capture = _active.get() or _process
        if capture is not None:
            # Not contextlib.suppress: this runs on every print, and a try block is free.
            try:  # noqa: SIM105
                capture._record(self._name, text)
            except Exception:  # capture must never break a print
                pass
        return written

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line, as `write` does."""
        lines = list(lines)
        self._stream.writelines(lines)
        capture = _active.get() or _process
        if capture is not None:
            try:  # noqa: SIM105
                capture._record(self._name, "".join(lines))
            except Exception:
                pass

    def flush(self) -> None:
        """Flush the real stream."""
        self._stream.flush()

    def isatty(self) -> bool:
        """Whether the real stream is a terminal."""
        return self._stream.isatty()

    def fileno(self) -> int:
        """The real stream's file descriptor (writes to it are not captured)."""
        return self._stream.fileno()

    def writable(self) -> bool:
        """True: this is an output stream."""
        return True

    def readable(self) -> bool:
        """False: this is an output stream."""
        return False

    def seekable(self) -> bool:
        """False: console streams cannot seek."""
        return False

    @property
    def encoding(self) -> str:
        """The real stream's encoding."""
        return self._stream.encoding

    @property
    def errors(self) -> str | None:
        """The real stream's error handler."""
        return self._stream.errors

    @property
    def closed(self) -> bool:
        """Whether the real stream is closed."""
        return self._stream.closed

    def __getattr__(self, name: str) -> Any:
        # Anything else (buffer, newlines, reconfigure, mode, name...) is the real stream's.
        return getattr(self._stream, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stream)

    def __repr__(self) -> str:
        return f"<chronos console capture of {self._stream!r}>"


# Code that checks `isinstance(sys.stdout, io.TextIOBase)` keeps working.
io.TextIOBase.register(_ConsoleStream)


def install() -> None:
    """Wrap `sys.stdout` and `sys.stderr` if they are not wrapped already (idempotent)."""
    if isinstance(sys.stdout, _ConsoleStream) and isinstance(sys.stderr, _ConsoleStream):
        return
    with _install_lock:
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if current is not None and not isinstance(current, _ConsoleStream):
                setattr(sys, name, _ConsoleStream(current, name))


def uninstall() -> None:
    """Put back the streams that were wrapped, where ours are still in place."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if isinstance(current, _ConsoleStream):
                setattr(sys, name, current.wrapped)


def is_installed() -> bool:
    """Whether `sys.stdout` and `sys.stderr` are currently ours."""
    return isinstance(sys.stdout, _ConsoleStream) and isinstance(sys.stderr, _ConsoleStream)
