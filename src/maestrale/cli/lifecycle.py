"""`maestrale models alias|tag|archive`: the audited changes a registered model can still undergo."""

from __future__ import annotations

from typing import Annotated

import typer

from maestrale.cli.models import RegistryUrl, Token, open_registry
from maestrale.cli.output import JsonFlag, print_json, say, usage_error


def alias(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. champion or challenger.")],
    version: Annotated[
        int | None, typer.Argument(metavar="VERSION", min=1, help="Version to point at (omit with --delete).")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, kept in the audit trail.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Point NAME@ALIAS at a version, or remove the alias with --delete (every move is audited).

    Model servers that load NAME@champion hot-reload when champion moves.

    Examples: maestrale models alias pv-forecast champion 3 --reason 'best backtest'
              maestrale models alias pv-forecast challenger --delete
    """
    if delete == (version is not None):
        raise usage_error("give either VERSION or --delete")
    reg = open_registry(registry, token)
    if delete:
        change = reg.delete_alias(name, alias_name)
    else:
        assert version is not None
        change = reg.set_alias(name, alias_name, version, reason=reason)
    if json_output:
        print_json(change)
    elif change.version is None:
        say(f"removed {name}@{alias_name} (was version {change.previous_version})")
    else:
        was = f" (was {change.previous_version})" if change.previous_version else ""
        say(f"{name}@{alias_name} → version {change.version}{was}")


def tag(
    ref: Annotated[
        str, typer.Argument(metavar="REF", help="NAME (model tag), NAME:VERSION or NAME@ALIAS (version tag).")
    ],
    key: Annotated[str, typer.Argument(metavar="KEY", help="Tag key, e.g. site.")],
    value: Annotated[
        str | None, typer.Argument(metavar="VALUE", help="Tag value (omit with --delete).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the tag instead.")] = False,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Set or remove a tag on a model (NAME) or on a version (NAME:VERSION, NAME@ALIAS).

    Tags are the one mutable part of a version. An alias is resolved first, so the tag lands on
    the version the alias points at now.

    Examples: maestrale models tag pv-forecast:3 validated yes
              maestrale models tag pv-forecast owner --delete
    """
    if delete == (value is not None):
        raise usage_error("give either VALUE or --delete")
    reg = open_registry(registry, token)
    target = reg.get_version(ref).ref if "@" in ref else ref
    reg.set_tag(target, key, value)
    if json_output:
        print_json({"target": target, "key": key, "value": value})
    elif value is None:
        say(f"removed tag {key!r} from {target}")
    else:
        say(f"tagged {target} {key}={value}")


# archive and unarchive take the same reference and reason
VersionOrModel = Annotated[
    str, typer.Argument(metavar="REF", help="NAME:VERSION (one version) or NAME (the whole model).")
]
Reason = Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")]


def archive(
    ref: VersionOrModel,
    reason: Reason = None,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Archive a version or a whole model; nothing is deleted and exact references still load.

    A version an alias points at cannot be archived: move or delete the alias first.

    Examples: maestrale models archive pv-forecast:2 --reason "superseded by 3"
              maestrale models archive old-pv-model
    """
    if "@" in ref:
        raise usage_error(
            "archive takes NAME:VERSION or NAME, not an alias (an aliased version cannot be archived)"
        )
    mv = open_registry(registry, token).archive(ref, reason=reason)
    if json_output:
        print_json(mv if mv is not None else {"name": ref, "archived": True})
    elif mv is not None:
        say(f"archived {mv.ref}")
    else:
        say(f"archived model {ref} (hidden from `models list`; its versions still load by NAME:VERSION)")


def unarchive(
    ref: VersionOrModel,
    reason: Reason = None,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Undo `archive`: the version is ready again (it can take an alias), or the model listed again.

    Unarchiving a model leaves its archived versions archived.

    Examples: maestrale models unarchive pv-forecast:2 --reason "compare with the champion"
              maestrale models unarchive old-pv-model
    """
    if "@" in ref:
        raise usage_error("unarchive takes NAME:VERSION or NAME, not an alias (an alias never points at one)")
    mv = open_registry(registry, token).unarchive(ref, reason=reason)
    if json_output:
        print_json(mv if mv is not None else {"name": ref, "archived": False})
    elif mv is not None:
        say(f"unarchived {mv.ref}")
    else:
        say(f"unarchived model {ref} (listed again; its archived versions stay archived)")


def register(models_app: typer.Typer) -> None:
    """Attach `alias`, `tag`, `archive` and `unarchive` to the `models` group."""
    models_app.command("alias")(alias)
    models_app.command("tag")(tag)
    models_app.command("archive")(archive)
    models_app.command("unarchive")(unarchive)
