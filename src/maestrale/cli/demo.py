"""`maestrale demo`: the main job on embedded defaults (see `maestrale.demo`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer


def demo(
    home: Annotated[
        Path, typer.Option(help="Folder for the demo's registry (wiped first unless --keep).")
    ] = Path(".demo"),
    keep: Annotated[
        bool, typer.Option(help="Keep an existing demo registry and add versions to it.")
    ] = False,
    plot: Annotated[bool, typer.Option(help="Write demo-forecast.png (needs matplotlib).")] = True,
    summary: Annotated[
        Path | None, typer.Option(help="Write the demo's figures as JSON to this file.")
    ] = None,
) -> None:
    """Train two PV models on real NREL system 50 data, register, promote, load by alias and predict.

    Example: `maestrale demo --home /tmp/demo --summary /tmp/demo.json`
    """
    from maestrale.demo import run_demo

    if home.exists() and not keep:
        shutil.rmtree(home)
    result = run_demo(home.resolve(), plot=plot)
    if summary is not None:
        summary.write_text(json.dumps(result, indent=2, default=str) + "\n")
        typer.echo(f"summary: {summary}")


def register(app: typer.Typer) -> None:
    """Attach `demo` to the root app."""
    app.command("demo")(demo)
