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
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from maestrale import __version__
from maestrale.cli import (
    admin,
    artifacts,
    bus,
    demo,
    deploy,
    lifecycle,
    models,
    monitoring,
    policy,
    report,
    serve,
    service,
    train,
)
from maestrale.cli.output import error
from maestrale.errors import MaestraleError


class ErrorHandlingGroup(TyperGroup):
    """The root group: a `MaestraleError` from any command becomes `error: …` on stderr and exit 1.

    Handling it here (not only in `main()`) means `CliRunner` tests see exactly what users see.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MaestraleError as exc:
            error(exc.message)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=ErrorHandlingGroup,
    name="maestrale",
    help=(
        "Maestrale: registry, training, monitoring and serving for energy-forecasting models.\n\n"
        "Embedded by default (SQLite + a local folder under MAESTRALE_HOME, default ./.maestrale); "
        "pass --registry URL --token TOKEN (or set MAESTRALE_REGISTRY_URL and MAESTRALE_TOKEN) "
        "to work against a `maestrale server`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"maestrale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Maestrale command line."""


lifecycle.register(models.app)
artifacts.register(models.app)
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
