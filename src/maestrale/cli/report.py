"""`maestrale report NAME`: the monitoring report of a model as one self-contained HTML file.

The command imports what it needs inside its body, so `maestrale --help` stays fast.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["report", "pv-nrel-50", "--out", "pv.html"]).exit_code  # doctest: +SKIP
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maestrale.cli.models import RegistryUrl, Token
from maestrale.cli.output import JsonFlag, note, print_json, say, usage_error


def report(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name, e.g. pv-nrel-50.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "--output", "-o", help="HTML file to write (default: report-NAME.html in this folder)."
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", help="Only evaluations over this window, e.g. 7D (default: every window)."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title of the report.")] = None,
    registry: RegistryUrl = None,
    token: Token = None,
    json_output: JsonFlag = False,
) -> None:
    """Write a self-contained HTML monitoring report: performance, forecast vs actual, drift, events.

    The monitor's records are read from MAESTRALE_DATABASE_URL (also when the registry is remote);
    versions and alias moves from the registry. A registered model without data still gets a report
    that says what is missing; a name neither registered nor monitored is an error (exit 1).
    Plots need matplotlib: pip install 'maestrale\\[plot]'.

    Example: maestrale report pv-nrel-50 --window 7D --out pv.html
    """
    import os

    from maestrale.cli.models import open_registry
    from maestrale.config import load_settings
    from maestrale.monitoring.report import collect, render, require_matplotlib
    from maestrale.monitoring.store import MonitorStore
    from maestrale.refs import validate_name
    from maestrale.vocabulary import parse_window

    validate_name(name)
    require_matplotlib()  # fail before reading anything, with the install hint
    if window is not None:
        try:
            parse_window(window)
        except ValueError as exc:
            raise usage_error(str(exc)) from None
    reg = open_registry(registry, token)
    settings = load_settings()
    if reg.is_remote and not os.environ.get("MAESTRALE_DATABASE_URL"):
        # the server holds the registry, but the monitor's tables are read straight from SQL: without
        # the URL this is the local default database, most likely not the one the monitor writes to
        note(
            f"reading the monitor's records from {settings.database_url}: set MAESTRALE_DATABASE_URL "
            "to the database `maestrale monitor` writes to"
        )
    assert settings.database_url  # filled by the Settings defaults
    store = MonitorStore(settings.database_url, auto_upgrade=settings.auto_upgrade)
    data = collect(store, reg, name, window=window)
    if not data.registered and not data.logged:  # most likely a typo: no empty report, a clear error
        from maestrale.errors import NotFound

        raise NotFound(
            f"{name!r} is neither registered nor monitored here: check the name with `maestrale models "
            "list` or `maestrale monitor status`, or point MAESTRALE_DATABASE_URL at the monitor's "
            "database (`maestrale info` shows the one in use)"
        )
    text = render(data, title=title)
    path = out if out is not None else Path(f"report-{name}.html")
    path.write_text(text, encoding="utf-8")
    plots = text.count('<img src="data:image/png;base64,')
    if json_output:
        print_json({"path": str(path), "plots": plots, "summary": data.summary()})
        return
    say(str(path))
    say(f"{data.summary()}; {plots} plots")


def register(app: typer.Typer) -> None:
    """Attach `maestrale report` to the root app."""
    app.command("report")(report)
