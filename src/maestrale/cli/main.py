"""The `maestrale` command: one Typer app assembling the registry and admin commands.

Only Typer, rich and `maestrale.errors` are imported here; each command imports what it needs, so
`maestrale --help` and `maestrale models list` never load FastAPI or uvicorn.

>>> from maestrale.cli.main import app
>>> from typer.testing import CliRunner
>>> CliRunner().invoke(app, ["--version"]).stdout  # doctest: +SKIP
'maestrale 0.1.0\\n'
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from maestrale import __version__
from maestrale.cli import (
    admin,
    artifacts,
    bus,
    demo,
    deploy,
    info,
    lifecycle,
    models,
    monitoring,
    policy,
    report,
    serve,
    service,
    train,
    version_view,
)
from maestrale.cli.output import error, set_verbose
from maestrale.errors import MaestraleError, NotFound

if TYPE_CHECKING:
    # Typer vendors click (typer._click): TyperGroup's methods take that Context, typer.Context's base
    from typer._click import Context as ClickContext

HELP_OPTION_NAMES = ["-h", "--help"]


def plain_flags(command: Any) -> None:
    """Show no value type after flags (`--json`, `--help`) in `--help`, in `command` and below.

    Typer's rich help prints a type after every option, `<bool>` for flags too, although a flag
    takes no value; an empty metavar is what makes its help print none.
    """
    ctx = typer.Context(command, help_option_names=HELP_OPTION_NAMES)
    for param in [*command.params, command.get_help_option(ctx)]:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub)


class ErrorHandlingGroup(TyperGroup):
    """The root group: a `MaestraleError` from any command becomes `error: …` on stderr and exit 1.

    Handling it here (not only in `main()`) means `CliRunner` tests see exactly what users see.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_flags(self)  # the whole tree is built by now: Typer builds sub-commands first

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except MaestraleError as exc:
            error(exc.message)
            if isinstance(exc, NotFound):  # the usual cause: another registry than the user thinks
                info.note_registry()
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=ErrorHandlingGroup,
    name="maestrale",
    help=(
        "Maestrale: registry, training, monitoring and serving for energy-forecasting models.\n\n"
        "Embedded by default: SQLite and a folder of artifacts in the home, which is MAESTRALE_HOME, "
        "else the nearest project folder (a parent of the working directory with a .maestrale "
        "directory), else the user data directory. `maestrale info` says which; -v says it before "
        "every command. Pass --registry URL --token TOKEN (or set MAESTRALE_REGISTRY_URL and "
        "MAESTRALE_TOKEN) to work against a `maestrale server`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": HELP_OPTION_NAMES},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"maestrale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Say which registry, home and bus the command uses (on stderr) first."
        ),
    ] = False,
) -> None:
    """Maestrale command line."""
    set_verbose(verbose)
    if verbose:
        info.note_registry()
    # said once, when a command made the home: a new, empty registry must never pass unnoticed
    ctx.call_on_close(info.home_watch())


lifecycle.register(models.app)
artifacts.register(models.app)
version_view.register(models.app)
app.add_typer(models.app, name="models")
admin.register(app)
bus.register(app)
demo.register(app)
train.register(app)
service.register(app)
serve.register(app)
report.register(app)
monitoring.register(app)
policy.register(app)
deploy.register(app)
info.register(app)


def main() -> None:
    """Console-script entry point: run the app; user errors print `error: …` (red, stderr) and exit 1.

    >>> main()  # doctest: +SKIP  (reads sys.argv, e.g. `maestrale models list`)
    """
    try:
        app()
    except MaestraleError as exc:  # raised outside a command (e.g. while building the context)
        error(exc.message)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover - `python -m maestrale.cli.main`
    main()
