"""`chronos server`, `chronos keys ...` and `chronos db migrate`."""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from chronos_server.auth import IssuedKey, KeyManager
from chronos_server.errors import ChronosServerError
from chronos_server.settings import ServerSettings
from chronos_server.storage import AccountStore, build_stores

__all__ = ["db_group", "first_event_command", "keys_group", "server_command"]

T = TypeVar("T")


def _settings(**overrides: Any) -> ServerSettings:
    try:
        return ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc


def _with_accounts(settings: ServerSettings, work: Callable[[AccountStore], Awaitable[T]]) -> T:
    async def run() -> T:
        accounts = build_stores(settings).accounts
        await accounts.open()
        try:
            return await work(accounts)
        finally:
            await accounts.close()

    try:
        return asyncio.run(run())
    except ChronosServerError as exc:
        raise click.ClickException(exc.message) from exc


def first_event_command(base_url: str, key: str) -> str:
    """A shell line that sends one successful execution with `key`."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    body = {
        "executions": [
            {
                "execId": f"hello:{int(now.timestamp() * 1000)}",
                "jobId": "hello",
                "status": "success",
                "startedAt": stamp,
                "finishedAt": stamp,
                "durationMs": 0,
                "exitCode": 0,
            }
        ]
    }
    return shlex.join(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            f"{base_url}/api/ingest/executions/batch",
            "-H",
            "content-type: application/json",
            "-H",
            f"x-api-key: {key}",
            "-d",
            json.dumps(body, separators=(",", ":")),
        ]
    )


def _print_issued(issued: IssuedKey, base_url: str, *, first: bool) -> None:
    if first:
        click.echo("Created the owner account and its first API key.")
    click.echo("This key is shown once and stored only as a hash; keep it now:\n")
    click.echo(f"    {issued.secret}\n")
    click.echo(f"  prefix {issued.record.prefix}  (use it with `chronos keys revoke`)")
    click.echo(f"  export CHRONOS_API_KEY={issued.secret}\n")
    click.echo("Send a first event:\n")
    click.echo(first_event_command(base_url, issued.secret))
    click.echo("")


def _base_url(settings: ServerSettings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


@click.command("server")
@click.option("--host", default=None, help="Interface to listen on [127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [3001].")
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file of the embedded store [./chronos.db].",
)
@click.option("--log-level", default="info", show_default=True)
def server_command(
    host: str | None, port: int | None, database: Path | None, log_level: str
) -> None:
    """Run the server (embedded store unless CHRONOS_REDIS_URL / CHRONOS_POSTGRES_DSN are set)."""
    import uvicorn

    from chronos_server.app import create_app

    settings = _settings(host=host, port=port, database=database)
    issued = _with_accounts(settings, lambda accounts: KeyManager(accounts).bootstrap())
    if issued is not None:
        _print_issued(issued, _base_url(settings), first=True)
    click.echo(f"Chronos Synapse listening on {_base_url(settings)} (OpenAPI at /schema)")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
    )


@click.group("keys")
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file of the embedded store [./chronos.db].",
)
@click.pass_context
def keys_group(ctx: click.Context, database: Path | None) -> None:
    """Create, list and revoke API keys."""
    ctx.obj = _settings(database=database)


@keys_group.command("create")
@click.option("--name", default="default", show_default=True, help="A label for the key.")
@click.option("--user", "user_id", default=None, help="Owner user id [the first account].")
@click.option("--org", "org_id", default=None, help="Organisation id filled into jobs.")
@click.pass_obj
def create_key(
    settings: ServerSettings, name: str, user_id: str | None, org_id: str | None
) -> None:
    """Issue a key; it is printed once."""

    async def work(accounts: AccountStore) -> tuple[IssuedKey, bool]:
        keys = KeyManager(accounts)
        owner_id = user_id
        first = False
        if owner_id is None:
            owner = await keys.owner()
            if owner is None:
                owner = await accounts.create_user(email="owner@localhost", name="owner")
                first = True
            owner_id = owner.id
        return await keys.create_key(owner_id, name=name, org_id=org_id), first

    issued, first = _with_accounts(settings, work)
    _print_issued(issued, _base_url(settings), first=first)


@keys_group.command("list")
@click.option("--user", "user_id", default=None, help="Only this user's keys.")
@click.pass_obj
def list_keys(settings: ServerSettings, user_id: str | None) -> None:
    """One line per key: prefix, name, owner, created, last used, state."""
    records = _with_accounts(settings, lambda accounts: accounts.list_api_keys(user_id))
    if not records:
        click.echo("no keys")
        return
    click.echo(f"{'PREFIX':<10} {'NAME':<20} {'USER':<18} {'CREATED':<20} {'LAST USED':<20} STATE")
    for record in records:
        click.echo(
            f"{record.prefix:<10} {record.name[:20]:<20} {record.user_id[:18]:<18} "
            f"{_when(record.created_at):<20} {_when(record.last_used_at):<20} "
            f"{'revoked' if record.revoked else 'active'}"
        )


@keys_group.command("revoke")
@click.argument("key")
@click.pass_obj
def revoke_key(settings: ServerSettings, key: str) -> None:
    """Revoke a key by prefix or id; servers refuse it within `auth_cache_seconds`."""
    _with_accounts(settings, lambda accounts: KeyManager(accounts).revoke(key))
    click.echo(f"revoked {key}")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


@click.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("migrate")
def migrate() -> None:
    """Apply pending migrations (PostgreSQL), or create the SQLite schema."""
    settings = _settings()

    async def work(accounts: AccountStore) -> str:
        applied: list[str] = list(getattr(accounts, "applied_migrations", []))
        return ", ".join(applied) if applied else "schema up to date"

    click.echo(_with_accounts(settings, work))
