"""`maestrale models …`: the group, its shared registry options, and the read-only commands.

Listings show a few metric columns (`--metrics`, default `DEFAULT_METRICS`), not the 45 a trained
version records; `models show NAME:VERSION` shows all of them and `models compare` sets versions
side by side (`maestrale.cli.version_view`). `--json` always prints the full records.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from maestrale.cli.output import (
    STATE,
    JsonFlag,
    fields,
    fmt_map,
    fmt_metric,
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
#: The metric columns of listings when --metrics is not given (those that some row has).
DEFAULT_METRICS = ("nmae", "rmse", "skill", "backtest_nmae")
Metrics = Annotated[
    str | None,
    typer.Option(
        "--metrics",
        "-m",
        metavar="NAMES",
        help="Metric columns, comma-separated, e.g. nmae,rmse,persistence_nmae; 'all' for every metric "
        f"in one column. Default: {', '.join(DEFAULT_METRICS)} (those recorded).",
    ),
]


def open_registry(url: str | None, token: str | None) -> Registry:
    """The registry the options point at: remote with a URL, else embedded from MAESTRALE_* settings.

    Remembered for `-v` and for the note after a "not found" error (`maestrale.cli.info`).
    """
    from maestrale.registry.client import Registry  # imported here: `--help` stays fast

    reg = Registry(url, token=token)
    STATE.registry = reg.location
    if STATE.verbose and url and url != os.environ.get("MAESTRALE_REGISTRY_URL"):
        from maestrale.cli.info import mask_url

        note(f"registry: {mask_url(url)} (--registry)")  # the root's -v line described the environment's
    return reg


def _sha(mv: ModelVersion) -> str:
    return mv.artifact.sha256[:12]


def metric_columns(requested: str | None, items: list[ModelVersion]) -> list[str] | None:
    """The metric columns to show: those asked for, else the defaults some row has; None means all.

    >>> metric_columns("nmae, rmse", [])
    ['nmae', 'rmse']
    """
    if requested is not None and requested.strip().lower() == "all":
        return None
    recorded = {k for mv in items for k in mv.metrics}
    if requested:
        wanted = [m.strip() for m in requested.split(",") if m.strip()]
        missing = [m for m in wanted if m not in recorded]
        if items and missing:
            note(f"no version here records {', '.join(missing)}; recorded: {', '.join(sorted(recorded))}")
        return wanted
    chosen = [m for m in DEFAULT_METRICS if m in recorded]
    return chosen or sorted(recorded)[:4]  # versions registered by hand: their first metrics


def version_table(
    title: str | None, items: list[ModelVersion], metrics: str | None, *, with_name: bool
) -> None:
    """One row per version: reference, status, creation, the chosen metrics, aliases, short sha256."""
    columns = metric_columns(metrics, items)
    head = ["ref" if with_name else "version", "status", "created"]
    head += ["metrics"] if columns is None else columns
    rows = []
    for mv in items:
        values = (
            [fmt_metrics(mv.metrics)] if columns is None else [fmt_metric(mv.metrics.get(c)) for c in columns]
        )
        rows.append(
            [mv.ref if with_name else mv.version, mv.status, fmt_time(mv.created_at), *values,
             ", ".join(mv.aliases) or "-", _sha(mv)]
        )  # fmt: skip
    no_wrap = [head[0], "created", "sha256", *(columns or [])]
    table(title, [*head, "aliases", "sha256"], rows, no_wrap=no_wrap)


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
        from maestrale.cli.info import mask_url

        note(
            f"no models yet in {mask_url(reg.location)}; train one (`maestrale train SPEC.yaml --local`) "
            "or register one from Python: Registry().register('pv-forecast', model)"
        )
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
    ref: Annotated[
        str,
        typer.Argument(
            metavar="NAME|NAME:VERSION|NAME@ALIAS",
            help="A model (its aliases, tags, latest version) or one version (its full record).",
        ),
    ],
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Show a model, or one version: params, metrics, data, spec summary, aliases and lineage.

    Examples: maestrale models show pv-forecast
              maestrale models show pv-forecast:3
              maestrale models show pv-forecast@champion --json
    """
    reg = open_registry(registry, token)
    if ":" in ref or "@" in ref:
        from maestrale.cli.version_view import show_version

        mv = reg.get_version(ref)
        if json_output:
            print_json(mv)
        else:
            show_version(mv)
        return
    model = reg.get_model(ref)
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
    note(f"one version: maestrale models show {model.name}:{model.latest_version}")


@app.command("versions")
def versions(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name, e.g. pv-forecast.")],
    metrics: Metrics = None,
    limit: Limit = 20,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """List a model's versions, newest first: a few metric columns, aliases and artifact sha256.

    --json prints the full records (input schema, spec, profile and lineage included).

    Examples: maestrale models versions pv-forecast --limit 5
              maestrale models versions pv-forecast --metrics nmae,skill,persistence_nmae
    """
    page = open_registry(registry, token).list_versions(name, limit=limit, full=json_output)
    if json_output:
        print_json(page.items)
        return
    if not page.items:
        note(f"model {name!r} has no versions")
        return
    version_table(name, page.items, metrics, with_name=False)
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
    metrics: Metrics = None,
    limit: Limit = 50,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Search versions across models by metrics, params, tags and fields.

    A filter is clauses joined by 'and': FIELD OP VALUE, where FIELD is name, version, status, format,
    flavor, created_at, created_by, data_version, metrics.KEY, params.KEY or tags.KEY; OP is one of
    = != < <= > >= like ilike; VALUE is a quoted string or a number. --json prints the full records.

    Example: maestrale models search "metrics.nmae < 0.08 and tags.site = 'p50'" --order-by metrics.nmae
    """
    page = open_registry(registry, token).search_versions(
        filter, order_by=order_by, limit=limit, include_archived=archived, full=json_output
    )
    if json_output:
        print_json(page.items)
        return
    if not page.items:
        note("no versions match")
        return
    version_table(None, page.items, metrics, with_name=True)
    _more(page.next_page_token, limit)
