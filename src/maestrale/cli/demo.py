"""`maestrale demo`: the main job on embedded defaults (see `maestrale.demo`)."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from maestrale.demo.scenario import DEFAULT_FAULT_LOSS, DEFAULT_FAULT_START, REPLAY_END, REPLAY_START


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2012-07-02") from None


def demo(
    home: Annotated[
        Path,
        typer.Option(
            help="Folder for the demo's registry, data lake and report (wiped first unless --keep)."
        ),
    ] = Path(".demo"),
    keep: Annotated[
        bool, typer.Option(help="Keep an existing demo folder (the replay then adds to it).")
    ] = False,
    fault_start: Annotated[
        str, typer.Option(help="Local date the plant loses capacity (2012-04-02 … 2013-12-31).")
    ] = DEFAULT_FAULT_START.isoformat(),
    fault_loss: Annotated[float, typer.Option(help="Share of capacity lost, e.g. 0.2.")] = DEFAULT_FAULT_LOSS,
    no_fault: Annotated[bool, typer.Option("--no-fault", help="A clean run: no fault injected.")] = False,
    start: Annotated[str, typer.Option(help="First replayed day.")] = REPLAY_START.isoformat(),
    end: Annotated[str, typer.Option(help="Last replayed day.")] = REPLAY_END.isoformat(),
    actual_delay: Annotated[int, typer.Option(min=1, max=30, help="Days before actuals arrive.")] = 1,
    policy: Annotated[
        Path | None, typer.Option(help="Monitoring policy YAML (default: the shipped one).")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Write the loop's figures as JSON to this file.")
    ] = None,
) -> None:
    """Replay NREL system 50 as production: forecast, late actuals, fault, detection, retraining, promotion.

    Example: `maestrale demo --fault-start 2012-07-02 --fault-loss 0.2 --summary demo.json`
    """
    from maestrale.demo import run_demo

    if home.exists() and not keep:
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    result = run_demo(
        home.resolve(),
        fault_start=None if no_fault else _date(fault_start),
        fault_loss=fault_loss,
        replay_start=_date(start),
        replay_end=_date(end),
        actual_delay=actual_delay,
        policy_path=policy,
    )
    if summary is not None:
        summary.write_text(json.dumps(result, indent=2, default=_json) + "\n")
        typer.echo(f"summary: {summary}")


def _json(obj: object) -> str:
    return obj.isoformat() if isinstance(obj, date | datetime) else str(obj)


def register(app: typer.Typer) -> None:
    """Attach `demo` to the root app."""
    app.command("demo")(demo)
