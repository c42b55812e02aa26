"""`chronos jobs`, `chronos runs` and `chronos run-info`: the read API in a terminal.

Tables for people, `--json` (one JSON document, or one JSON object per line with `--follow`)
for scripts. The server and key come from `CHRONOS_API_URL` and `CHRONOS_API_KEY`, or the
`--endpoint` and `--api-key` options.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from chronos_core._exceptions import ChronosError
from chronos_core._models import ExecutionStatus, WireModel
from chronos_core._query import ChronosAPI

__all__ = ["jobs_command", "run_info_command", "runs_command"]

F = TypeVar("F", bound=Callable[..., Any])


def _connection_options(fn: F) -> F:
    fn = click.option("--api-key", envvar=None, default=None, help="API key [CHRONOS_API_KEY].")(fn)
    fn = click.option("--endpoint", default=None, help="Server URL [CHRONOS_API_URL].")(fn)
    return fn


def _api(api_key: str | None, endpoint: str | None) -> ChronosAPI:
    try:
        return ChronosAPI(api_key=api_key, endpoint=endpoint)
    except ChronosError as exc:
        raise click.ClickException(str(exc)) from exc


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns as wide as their content."""
    rows = [list(row) for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _dump(value: WireModel | list[Any]) -> str:
    if isinstance(value, list):
        return json.dumps([item.model_dump(mode="json", by_alias=True) for item in value], indent=2)
    return value.model_dump_json(by_alias=True, indent=2)


def _fail(exc: ChronosError) -> click.ClickException:
    return click.ClickException(str(exc) or type(exc).__name__)


@click.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_connection_options
def jobs_command(as_json: bool, api_key: str | None, endpoint: str | None) -> None:
    """List jobs: last run and status, next run, success rate and p95 over 24 hours."""
    with _api(api_key, endpoint) as api:
        try:
            jobs = api.jobs()
        except ChronosError as exc:
            raise _fail(exc) from exc
    if as_json:
        click.echo(_dump(jobs))
        return
    if not jobs:
        click.echo("no jobs yet")
        return
    click.echo(
        table(
            ["JOB", "SCHEDULE", "LAST RUN", "STATUS", "NEXT RUN", "RUNS", "SUCCESS", "P95"],
            [
                [
                    job.id,
                    job.schedule or "-",
                    _when(job.last_run_at),
                    job.last_status.value if job.last_status else "-",
                    _when(job.next_run_at),
                    str(job.stats.runs),
                    _pct(job.stats.success_rate),
                    _ms(job.stats.p95_ms),
                ]
                for job in jobs
            ],
        )
    )


_RUN_HEADERS = ["STARTED", "JOB", "STATUS", "DURATION", "EXIT", "EXEC ID", "ERROR"]


def _run_row(run: Any) -> list[str]:
    error = run.error_message or run.error_type or ""
    return [
        _when(run.started_at),
        run.job_id,
        run.status.value,
        _ms(run.duration_ms),
        "-" if run.exit_code is None else str(run.exit_code),
        run.exec_id,
        error.splitlines()[0][:60] if error else "",
    ]


@click.command("runs")
@click.option("--job", "job_id", default=None, help="Only this job.")
@click.option(
    "--status",
    multiple=True,
    type=click.Choice([s.value for s in ExecutionStatus]),
    help="Only these statuses (repeatable).",
)
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@click.option("--follow", "-f", is_flag=True, help="Then stream new runs as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="JSON (one object per line with --follow).")
@_connection_options
def runs_command(
    job_id: str | None,
    status: tuple[str, ...],
    limit: int,
    follow: bool,
    as_json: bool,
    api_key: str | None,
    endpoint: str | None,
) -> None:
    """List the latest runs, newest first; with --follow, keep printing new ones."""
    with _api(api_key, endpoint) as api:
        try:
            runs = list(
                itertools.islice(
                    api.executions(job_id=job_id, status=status or None, page_size=min(limit, 500)),
                    limit,
                )
            )
        except ChronosError as exc:
            raise _fail(exc) from exc
        if as_json and not follow:
            click.echo(_dump(runs))
            return
        if as_json:
            for run in reversed(runs):
                click.echo(run.model_dump_json(by_alias=True))
        elif runs:
            click.echo(table(_RUN_HEADERS, [_run_row(r) for r in runs]))
        elif not follow:
            click.echo("no runs")
        if not follow:
            return
        if not as_json:
            click.echo("-- following new runs (Ctrl-C to stop) --")
        try:
            for event in api.follow(
                on_reset=lambda: click.echo("-- gap: some runs were missed --", err=True)
            ):
                if job_id is not None and event.job_id != job_id:
                    continue
                if status and event.status.value not in status:
                    continue
                if as_json:
                    click.echo(event.model_dump_json(by_alias=True))
                else:
                    click.echo(
                        f"{_when(event.started_at)}  {event.job_id}  {event.status.value}  "
                        f"{_ms(event.duration_ms)}  {event.exec_id}"
                    )
        except KeyboardInterrupt:
            return
        except ChronosError as exc:
            raise _fail(exc) from exc


@click.command("run-info")
@click.argument("exec_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_connection_options
def run_info_command(
    exec_id: str, as_json: bool, api_key: str | None, endpoint: str | None
) -> None:
    """Everything about one run: status, timing, error, stack, code snippet, stdout, stderr."""
    with _api(api_key, endpoint) as api:
        try:
            run = api.execution(exec_id)
        except ChronosError as exc:
            raise _fail(exc) from exc
    if as_json:
        click.echo(_dump(run))
        return
    fields = [
        ("exec id", run.exec_id),
        ("job", run.job_id),
        ("status", run.status.value),
        ("started", _when(run.started_at)),
        ("finished", _when(run.finished_at)),
        ("duration", _ms(run.duration_ms)),
        ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
        ("attempt", str(run.attempt)),
        ("job version", run.job_version or "-"),
        ("app version", run.app_version or "-"),
        ("source", run.source.value if run.source else "-"),
        ("host", run.host or "-"),
    ]
    if run.error_type or run.error_message:
        fields.append(("error", f"{run.error_type or 'Error'}: {run.error_message or ''}"))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        click.echo(f"{name.ljust(width)}  {value}")
    for title, text in (
        ("stack", run.error_stack),
        (f"code ({run.code_language or 'text'})", run.code_snippet),
        ("stdout", run.stdout),
        ("stderr", run.stderr),
    ):
        if text:
            click.echo(f"\n-- {title} --\n{text.rstrip()}")
