"""`chronos exec`: monitor any command, such as a crontab line.

The command's output passes through untouched while a bounded copy is kept for the
execution record; the exit code, duration and output are sent when it ends, within
`--send-timeout` seconds, and `chronos exec` exits with the command's own exit code. A
missing API key or an unreachable server costs a warning on stderr, never the job.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import IO

import click

from chronos_core._capture import RunCapture
from chronos_core._config import ChronosSettings
from chronos_core._exceptions import ChronosError
from chronos_core._exporter import BatchExporter
from chronos_core._models import ExecutionStatus, JobDefinition, RunMode, Source
from chronos_core._truncate import truncate_text

__all__ = ["exec_command", "run_monitored"]

DEFAULT_SEND_TIMEOUT = 5.0
_CHUNK = 64 * 1024


class _Tee:
    """Copies a pipe to our own stream while keeping a bounded head and tail of it."""

    def __init__(self, source: IO[bytes], sink: IO[bytes], max_bytes: int) -> None:
        self._source = source
        self._sink = sink
        self._limit = max(max_bytes, 0) // 2 + 4  # per end; +4 so a code point is never cut
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        read = getattr(self._source, "read1", self._source.read)
        while chunk := read(_CHUNK):
            with contextlib.suppress(OSError, ValueError):
                self._sink.write(chunk)
                self._sink.flush()
            self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        self._total += len(chunk)
        room = self._limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            del self._tail[: max(len(self._tail) - self._limit, 0)]

    def text(self, max_bytes: int) -> str:
        """What the command wrote, truncated to `max_bytes` (head and tail kept)."""
        self.thread.join(timeout=5)
        head = bytes(self._head).decode("utf-8", errors="ignore")
        tail = bytes(self._tail).decode("utf-8", errors="ignore")
        skipped = self._total - len(self._head) - len(self._tail)
        if skipped > 0:
            return truncate_text(f"{head}\n…[{skipped} bytes not kept]…\n{tail}", max_bytes)
        return truncate_text(head + tail, max_bytes)


def _status_for(returncode: int, timed_out: bool) -> ExecutionStatus:
    if timed_out:
        return ExecutionStatus.TIMEOUT
    if returncode == 0:
        return ExecutionStatus.SUCCESS
    if returncode in (-signal.SIGINT, -signal.SIGTERM):
        return ExecutionStatus.CANCELLED
    return ExecutionStatus.FAILED


def _exit_code(returncode: int) -> int:
    # A command killed by signal N exits 128 + N, as a shell reports it.
    return 128 - returncode if returncode < 0 else returncode


def _make_exporter(settings: ChronosSettings) -> BatchExporter | None:
    try:
        return BatchExporter(settings=settings)
    except ChronosError as error:
        click.echo(f"chronos: not reporting this run: {error}", err=True)
        return None


def _register(exporter: BatchExporter, job: JobDefinition, timeout: float) -> threading.Thread:
    def register() -> None:
        try:
            exporter.client.register_jobs([job], timeout=timeout)
        except ChronosError as error:
            click.echo(f"chronos: could not register job {job.id}: {error}", err=True)

    thread = threading.Thread(target=register, daemon=True)
    thread.start()
    return thread


def run_monitored(
    command: Sequence[str],
    *,
    job_id: str,
    settings: ChronosSettings,
    name: str | None = None,
    schedule: str | None = None,
    timeout: float | None = None,
    send_timeout: float = DEFAULT_SEND_TIMEOUT,
) -> int:
    """Run `command`, report it as one execution of `job_id`, return its exit code."""
    exporter = None if settings.disabled else _make_exporter(settings)
    registration = None
    if exporter is not None and (name or schedule):
        job = JobDefinition(
            id=job_id,
            name=name or job_id,
            schedule=schedule or "",
            run_mode=RunMode.RECURRING if schedule else RunMode.ONCE,
            run_at=None if schedule else time.time() * 1000,
            source=Source.EXEC,
        )
        registration = _register(exporter, job, send_timeout)
    run = RunCapture(
        job_id,
        sink=exporter,
        source=Source.EXEC,
        max_log_bytes=settings.max_log_bytes,
        app_version=settings.app_version,
        emit_running=True,
        metadata={"command": " ".join(command)[:1000]},
    ).start()

    try:
        child = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as error:
        click.echo(f"chronos: cannot run {command[0]!r}: {error.strerror or error}", err=True)
        code = 126 if isinstance(error, PermissionError) else 127
        run.finish(ExecutionStatus.FAILED, error=error, exit_code=code)
        _deliver(exporter, registration, send_timeout)
        return code

    assert child.stdout is not None
    assert child.stderr is not None
    out = _Tee(child.stdout, sys.stdout.buffer, settings.max_log_bytes)
    err = _Tee(child.stderr, sys.stderr.buffer, settings.max_log_bytes)

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    timed_out = False
    try:
        try:
            returncode = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            child.terminate()
            try:
                returncode = child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    code = _exit_code(returncode)
    status = _status_for(returncode, timed_out)
    stderr = err.text(settings.max_log_bytes)
    run.finish(
        status,
        exit_code=code,
        stdout=out.text(settings.max_log_bytes),
        stderr=stderr,
        error_message=None if status is ExecutionStatus.SUCCESS else _describe(returncode, timeout),
    )
    _deliver(exporter, registration, send_timeout)
    return code


def _describe(returncode: int, timeout: float | None) -> str:
    if timeout is not None and returncode < 0 and returncode == -signal.SIGTERM:
        return f"timed out after {timeout:g}s"
    if returncode < 0:
        return f"killed by signal {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def _deliver(
    exporter: BatchExporter | None, registration: threading.Thread | None, send_timeout: float
) -> None:
    if exporter is None:
        return
    deadline = time.monotonic() + send_timeout
    if registration is not None:
        registration.join(send_timeout)
    if not exporter.shutdown(max(deadline - time.monotonic(), 0.0)):
        where = exporter.settings.spool_dir
        kept = f"; kept in {where}" if where else ""
        click.echo(f"chronos: could not deliver the run report in time{kept}", err=True)


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--job", "job_id", required=True, help="Job id the run is reported under.")
@click.option("--name", help="Job name; registers the job when given.")
@click.option("--schedule", help="Cron schedule of the job (e.g. the crontab line's).")
@click.option("--timeout", type=float, help="Stop the command after this many seconds.")
@click.option(
    "--send-timeout",
    type=float,
    default=DEFAULT_SEND_TIMEOUT,
    show_default=True,
    help="Longest time spent delivering the report after the command ends.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    job_id: str,
    name: str | None,
    schedule: str | None,
    timeout: float | None,
    send_timeout: float,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND and report it as one execution of the job.

    \b
    Example crontab line:
      0 * * * *  chronos exec --job nightly-report -- python report.py
    """
    try:
        settings = ChronosSettings.load()
    except ChronosError as error:
        click.echo(f"chronos: not reporting this run: {error}", err=True)
        settings = ChronosSettings.model_construct(disabled=True)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise click.UsageError("no command given after --")
    code = run_monitored(
        command,
        job_id=job_id,
        settings=settings,
        name=name,
        schedule=schedule,
        timeout=timeout,
        send_timeout=send_timeout,
    )
    sys.exit(code)
