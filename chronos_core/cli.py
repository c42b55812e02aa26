"""The `chronos` command line.

Subcommands live in the modules that own them and are imported only when invoked, so that
`chronos exec` in a crontab line does not pay for importing the server.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["main"]

# command name -> "module:attribute" of a click command
_COMMANDS: dict[str, str] = {
    "exec": "chronos_core._exec_cli:exec_command",
    "jobs": "chronos_core._query_cli:jobs_command",
    "runs": "chronos_core._query_cli:runs_command",
    "run-info": "chronos_core._query_cli:run_info_command",
    "run": "chronos_core.runner._cli:run_command",
    "server": "chronos_server.cli:server_command",
    "keys": "chronos_server.cli:keys_group",
    "db": "chronos_server.cli:db_group",
}

_EXTRA_HINT = {"chronos_server": "server"}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            extra = _EXTRA_HINT.get(module_name.split(".")[0], "all")
            raise click.ClickException(
                f"`chronos {cmd_name}` needs more packages ({exc.name} is missing): "
                f"pip install 'chronos-synapse[{extra}]'"
            ) from exc
        command: Any = getattr(module, attr)
        return command  # type: ignore[no-any-return]


@click.group(cls=_LazyGroup)
@click.version_option(package_name="chronos-synapse", prog_name="chronos")
def main() -> None:
    """Chronos Synapse: telemetry for every run of every job."""
