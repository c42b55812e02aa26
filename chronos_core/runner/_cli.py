"""`chronos run package.module:runner`: run a `ChronosRunner` until SIGINT/SIGTERM."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from chronos_core._exceptions import ChronosError
from chronos_core.runner._runner import ChronosRunner

__all__ = ["load_runner", "run_command"]


def load_runner(target: str) -> ChronosRunner:
    """Import `module:attribute` (default attribute: `runner`); a factory is called."""
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise click.UsageError(f"expected package.module:runner, got {target!r}")
    # Like `python -m`, let the current directory's modules be found.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise click.ClickException(f"cannot import {module_name!r}: {error}") from error
    try:
        found = getattr(module, attribute or "runner")
    except AttributeError:
        raise click.ClickException(
            f"{module_name!r} has no attribute {attribute or 'runner'!r}"
        ) from None
    if not isinstance(found, ChronosRunner) and callable(found):
        found = found()
    if not isinstance(found, ChronosRunner):
        raise click.ClickException(f"{target!r} is {type(found).__name__}, not a ChronosRunner")
    return found


@click.command("run")
@click.argument("target")
@click.option(
    "--mode",
    type=click.Choice(["local", "server"]),
    help="Override the runner's trigger mode.",
)
@click.option(
    "--stop-timeout",
    type=float,
    help="Seconds to wait for running jobs after SIGINT/SIGTERM (default: the runner's).",
)
@click.option("--log-level", default="INFO", show_default=True, help="Logging level.")
def run_command(target: str, mode: str | None, stop_timeout: float | None, log_level: str) -> None:
    """Run the ChronosRunner TARGET (package.module:attribute) until SIGINT or SIGTERM.

    \b
    Example:
      chronos run myapp.jobs:runner
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        runner = load_runner(target)
        if mode is not None:
            runner.mode = "server" if mode == "server" else "local"
    except ChronosError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"chronos: running {target} ({runner.mode} mode, jobs: {', '.join(runner.job_ids)})",
        err=True,
    )
    runner.run_forever(stop_timeout)
    click.echo("chronos: stopped", err=True)
