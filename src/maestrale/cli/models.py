"""`maestrale models …`: the group, its shared registry options, and the read-only commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from maestrale.cli.output import (
    JsonFlag,
    fields,
    fmt_map,
    fmt_metrics,
    fmt_time,
    note,
    print_json,
    say,
    table,
)

if TYPE_CHECKING:
    from maestrale.registry.client import Registry
    from maestrale.registry.types import ModelVersion

app = typer.Typer(
    help="Inspect and manage registered models: versions, aliases, tags, artifacts.",
    no_args_is_help=True,
)

RegistryUrl = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="MAESTRALE_REGISTRY_URL",
        help="URL of a `maestrale server`, e.g. http://maestrale:8080. Without it the registry is "
        "embedded (MAESTRALE_HOME, MAESTRALE_DATABASE_URL, MAESTRALE_STORAGE_URL).",
        rich_help_panel="Registry",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="MAESTRALE_TOKEN",
        help="Bearer token for --registry (create one with `maestrale token create`).",
        rich_help_panel="Registry",
    ),
]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="At most this many rows.")]


def open_registry(url: str | None, token: str | None) -> Registry:
    """The registry the options point at: remote with a URL, else embedded from MAESTRALE_* settings."""
    from maestrale.registry.client import Registry  # imported here: `--help` stays fast

    return Registry(url, token=token)


def _sha(mv: ModelVersion) -> str:
    return mv.artifact.sha256[:12]


def _version_rows(items: list[ModelVersion], with_name: bool) -> list[list[object]]:
    return [
        [
            mv.ref if with_name else mv.version,
            mv.status,
            fmt_time(mv.created_at),
            fmt_metrics(mv.metrics),
            ", ".join(mv.aliases) or "-",
            _sha(mv),
        ]
        for mv in items
    ]


def _more(next_token: str | None, limit: int) -> None:
    if next_token:
        note(f"showing the first {limit}; raise --limit to see more")


@app.command("list")
def list_models(
    like: Annotated[
        str | None, typer.Option("--like", help="SQL LIKE pattern on the name, e.g. 'pv-%'.")
    ] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived models.")] = False,
    limit: Limit = 100,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """List models with their latest version, aliases and last update.

    Example: maestrale models list --like 'pv-%' --json
    """
    reg = open_registry(registry, token)
    page = reg.list_models(limit=limit, name_like=like, include_archived=archived)
    if json_output:
        print_json(page.items)
        return
    if not page.items:
        note("no models yet; register one from Python: Registry().register('pv-forecast', model)")
        return
    rows = [
        [
            m.name + (" (archived)" if m.archived else ""),
            m.latest_version,
            fmt_map(m.aliases, "→"),
            fmt_time(m.updated_at),
        ]
        for m in page.items
    ]
    table(None, ["name", "latest", "aliases", "updated"], rows, no_wrap=["name", "updated"])
    _more(page.next_page_token, limit)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name, e.g. pv-forecast.")],
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Show a model: description, latest version, aliases and tags.

    Example: maestrale models show pv-forecast
    """
    model = open_registry(registry, token).get_model(name)
    if json_output:
        print_json(model)
        return
    fields(
        None,
        [
            ("name", model.name),
            ("description", model.description),
            ("latest version", model.latest_version),
            ("archived", "yes" if model.archived else "no"),
            ("created", fmt_time(model.created_at)),
            ("updated", fmt_time(model.updated_at)),
        ],
    )
    for title, mapping, cols in (
        ("aliases", model.aliases, ["alias", "version"]),
        ("tags", model.tags, ["key", "value"]),
    ):
        if mapping:
            table(title, cols, sorted(mapping.items()))
        else:
            say(f"{title}: none")


@app.command("versions")
def versions(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name, e.g. pv-forecast.")],
    limit: Limit = 20,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """List a model's versions, newest first, with metrics, aliases and artifact sha256.

    Example: maestrale models versions pv-forecast --limit 5
    """
    page = open_registry(registry, token).list_versions(name, limit=limit)
    if json_output:
        print_json(page.items)
        return
    if not page.items:
        note(f"model {name!r} has no versions")
        return
    cols = ["version", "status", "created", "metrics", "aliases", "sha256"]
    table(name, cols, _version_rows(page.items, False), no_wrap=["version", "created", "sha256"])
    _more(page.next_page_token, limit)


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name.")],
    alias_name: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Show the audit trail of alias moves: when, which alias, from and to which version, who, why.

    Example: maestrale models history pv-forecast --alias champion
    """
    changes = open_registry(registry, token).alias_history(name, alias_name)
    if json_output:
        print_json(changes)
        return
    if not changes:
        note(f"no alias changes for {name!r}" + (f" @{alias_name}" if alias_name else ""))
        return
    rows = [
        [
            fmt_time(c.at),
            c.alias,
            c.previous_version,
            "removed" if c.version is None else c.version,
            c.actor,
            c.reason,
        ]
        for c in changes
    ]
    table(f"{name} alias history", ["at", "alias", "from", "to", "actor", "reason"], rows, no_wrap=["at"])


@app.command("search")
def search(
    filter: Annotated[
        str | None,
        typer.Argument(metavar="FILTER", help="e.g. \"name = 'pv-forecast' and metrics.nmae < 0.07\""),
    ] = None,
    order_by: Annotated[
        str | None, typer.Option("--order-by", help="e.g. 'metrics.nmae' or 'created_at desc'.")
    ] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived versions.")] = False,
    limit: Limit = 50,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Search versions across models by metrics, params, tags and fields.

    A filter is clauses joined by 'and': FIELD OP VALUE, where FIELD is name, version, status, format,
    flavor, created_at, created_by, data_version, metrics.KEY, params.KEY or tags.KEY; OP is one of
    = != < <= > >= like ilike; VALUE is a quoted string or a number.

    Example: maestrale models search "metrics.nmae < 0.08 and tags.site = 'p50'" --order-by metrics.nmae
    """
    page = open_registry(registry, token).search_versions(
        filter, order_by=order_by, limit=limit, include_archived=archived
    )
    if json_output:
        print_json(page.items)
        return
    if not page.items:
        note("no versions match")
        return
    cols = ["ref", "status", "created", "metrics", "aliases", "sha256"]
    table(None, cols, _version_rows(page.items, True), no_wrap=["ref", "created", "sha256"])
    _more(page.next_page_token, limit)
