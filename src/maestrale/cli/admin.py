"""Operator commands: `maestrale server`, `db upgrade|current`, `token create|list|revoke` and `gc`.

`db`, `token` and `gc` act on the local database and storage (MAESTRALE_DATABASE_URL,
MAESTRALE_STORAGE_URL, MAESTRALE_HOME) directly, never through a server.
"""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Annotated

import typer

from maestrale.cli.output import JsonFlag, fmt_time, note, print_json, say, table

if TYPE_CHECKING:
    from maestrale.config import Settings

db_app = typer.Typer(help="Database schema migrations (Alembic) of the local database.", no_args_is_help=True)
token_app = typer.Typer(
    help="Bearer tokens for the REST API and model servers (scopes: read ⊂ predict ⊂ write ⊂ admin).",
    no_args_is_help=True,
)


def _settings() -> Settings:
    from maestrale.config import load_settings

    return load_settings()


def _database_url(settings: Settings) -> str:
    assert settings.database_url  # filled by the Settings defaults
    return settings.database_url


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _actor() -> str:
    try:
        return os.environ.get("MAESTRALE_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def server(
    host: Annotated[str, typer.Option("--host", help="Interface to bind; 0.0.0.0 for all.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", min=1, max=65535, help="TCP port (model servers, `maestrale serve`, default to 8000)."
        ),
    ] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Run the REST API (registry, tokens, /healthz, /readyz, /metrics) with uvicorn.

    On the first start against an empty token table it creates an admin token and writes it to
    MAESTRALE_HOME/admin.token (mode 0600); the path is printed.

    Example: MAESTRALE_HOME=/var/lib/maestrale maestrale server --host 0.0.0.0 --port 8080 --workers 4
    """
    from maestrale.errors import ConfigError

    try:
        import uvicorn

        from maestrale.api.app import bootstrap_admin_token, create_app
    except ImportError as exc:
        raise ConfigError(
            f"`maestrale server` needs the server extra ({exc.name} is missing): "
            "pip install 'maestrale[server]'"
        ) from None
    settings = _settings()
    # Bootstrapped here, once, before workers start: N workers racing on an empty table would make N tokens.
    token_file = bootstrap_admin_token(settings)
    if token_file:
        say(f"created an admin token in {token_file} (mode 0600): export MAESTRALE_TOKEN=$(cat {token_file})")
    elif not settings.auth:
        note("MAESTRALE_AUTH is off: every request is allowed without a token")
    say(f"serving {_masked(_database_url(settings))} + {settings.storage_url} on http://{host}:{port}")
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
    else:  # each worker builds its own app from the same MAESTRALE_* environment
        uvicorn.run(
            "maestrale.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option("--revision", help="Target Alembic revision.")] = "head",
    json_output: JsonFlag = False,
) -> None:
    """Create or migrate the schema of MAESTRALE_DATABASE_URL; safe to run again (and from many pods).

    Example: MAESTRALE_DATABASE_URL=postgresql+psycopg://maestrale@db/maestrale maestrale db upgrade
    """
    from maestrale.platform.db import HEAD_REVISION, current_revision, get_engine, upgrade

    url = _database_url(_settings())
    before = current_revision(get_engine(url))
    after = upgrade(url, revision)
    if json_output:
        print_json({"database_url": _masked(url), "from": before, "revision": after, "head": HEAD_REVISION})
    elif before == after:
        say(f"{_masked(url)} is already at revision {after}")
    else:
        say(f"upgraded {_masked(url)} from {before or 'an empty schema'} to revision {after}")


@db_app.command("current")
def db_current(json_output: JsonFlag = False) -> None:
    """Show the schema revision of MAESTRALE_DATABASE_URL and whether it is up to date.

    Example: maestrale db current --json
    """
    from maestrale.platform.db import HEAD_REVISION, current_revision, get_engine

    url = _database_url(_settings())
    rev = current_revision(get_engine(url))
    if json_output:
        print_json(
            {
                "database_url": _masked(url),
                "revision": rev,
                "head": HEAD_REVISION,
                "up_to_date": rev == HEAD_REVISION,
            }
        )
    elif rev == HEAD_REVISION:
        say(f"{_masked(url)}: revision {rev} (head)")
    else:
        say(
            f"{_masked(url)}: revision {rev or 'none'}, this Maestrale needs {HEAD_REVISION}; "
            "run `maestrale db upgrade`"
        )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="What the token is for, e.g. training-worker.")],
    scope: Annotated[
        str, typer.Option("--scope", help="read, predict (model servers, prediction logs), write or admin.")
    ] = "read",
    json_output: JsonFlag = False,
) -> None:
    """Create a token and print its secret once (only its sha256 is stored).

    The secret alone goes to stdout, so it can be captured:

    Example: export MAESTRALE_TOKEN=$(maestrale token create ci --scope write)
    """
    from maestrale.tokens import create_token, lookup_token

    url = _database_url(_settings())
    secret = create_token(url, name, scope, created_by=_actor())
    info = lookup_token(url, secret)
    if json_output:
        print_json({"id": info.id if info else None, "name": name, "scope": scope, "token": secret})
        return
    typer.echo(secret)
    note(
        f"created token {name!r} (id {info.id if info else '?'}, scope {scope}); "
        "store the secret now, it is not shown again"
    )


@token_app.command("list")
def token_list(json_output: JsonFlag = False) -> None:
    """List tokens (ids, names, scopes, prefixes; never secrets).

    Example: maestrale token list
    """
    from maestrale.tokens import list_tokens

    tokens = list_tokens(_database_url(_settings()))
    if json_output:
        print_json(tokens)
        return
    if not tokens:
        note("no tokens; create one with `maestrale token create NAME --scope read|predict|write|admin`")
        return
    rows = [
        [t.id, t.name, t.scope, t.prefix + "…", fmt_time(t.created_at), "revoked" if t.revoked else "active"]
        for t in tokens
    ]
    table(None, ["id", "name", "scope", "prefix", "created", "status"], rows, no_wrap=["prefix", "created"])


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="Token id, from `maestrale token list`.")],
    json_output: JsonFlag = False,
) -> None:
    """Revoke a token; servers stop accepting it within 5 seconds.

    Example: maestrale token revoke 3
    """
    from maestrale.tokens import revoke_token

    revoke_token(_database_url(_settings()), token_id, revoked_by=_actor())
    if json_output:
        print_json({"id": token_id, "revoked": True})
    else:
        say(f"revoked token {token_id}")


def gc(
    grace_hours: Annotated[
        float,
        typer.Option("--grace-hours", min=0, help="Keep objects younger than this (in-flight uploads)."),
    ] = 1.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Delete stored artifact objects that no version references (archived versions keep theirs).

    Runs next to the storage: uses MAESTRALE_DATABASE_URL and MAESTRALE_STORAGE_URL, never a server.

    Example: maestrale gc --dry-run --grace-hours 24
    """
    from datetime import timedelta

    from maestrale.registry.client import Registry

    settings = _settings().model_copy(update={"registry_url": None})
    keys = Registry(settings=settings).gc(grace=timedelta(hours=grace_hours), dry_run=dry_run)
    if json_output:
        print_json({"dry_run": dry_run, "objects": keys})
        return
    for key in keys:
        say(key)
    verb = "would delete" if dry_run else "deleted"
    note(f"{verb} {len(keys)} unreferenced object(s) older than {grace_hours:g} h in {settings.storage_url}")


def register(app: typer.Typer) -> None:
    """Attach the operator commands to the root app."""
    app.command("server")(server)
    app.add_typer(db_app, name="db")
    app.add_typer(token_app, name="token")
    app.command("gc")(gc)
