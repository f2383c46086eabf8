"""`maestrale demo`: the main job on embedded defaults (see `maestrale.demo`)."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from maestrale.demo.scenario import DEFAULT_FAULT_LOSS, DEFAULT_FAULT_START, REPLAY_END, REPLAY_START

MAX_PLANTS = 1000  # a fleet spec's member limit (maestrale.training.fleet.MAX_MEMBERS)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2012-07-02") from None


def demo(
    ctx: typer.Context,
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
    fleet: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_PLANTS,
            help="Replay a synthetic fleet of N PV plants across Italy (and a wind "
            "farm per 25) instead of NREL system 50; needs maestrale[fleet].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="--fleet: seed of the plants and their faults.")] = 0,
    fault_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="--fleet: share of the PV plants that get a fault.")
    ] = 0.2,
    days: Annotated[
        int, typer.Option(min=1, max=365, help="--fleet: days of the second year to replay.")
    ] = 365,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="--fleet: training jobs at once (each its own process).")
    ] = 2,
) -> None:
    """Replay NREL system 50 as production: forecast, late actuals, fault, detection, retraining, promotion.

    Example: `maestrale demo --fault-start 2012-07-02 --fault-loss 0.2 --summary demo.json`;
    a fleet: `maestrale demo --fleet 50 --days 120 --summary fleet.json`
    """
    _check_options(ctx, fleet is not None)
    if home.exists() and not keep:
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    if fleet is not None:
        result = _run_fleet(home.resolve(), fleet, seed, fault_share, days, workers, policy)
    else:
        plant = (fault_start, fault_loss, no_fault, start, end, actual_delay)
        result = _run_plant(home.resolve(), *plant, policy)
    if summary is not None:
        summary.write_text(json.dumps(result, indent=2, default=_json) + "\n")
        typer.echo(f"summary: {summary}")


_FLEET_ONLY = ("seed", "fault_share", "days", "workers")
_PLANT_ONLY = ("fault_start", "fault_loss", "no_fault", "start", "end", "actual_delay")


def _check_options(ctx: typer.Context, fleet: bool) -> None:
    """An option of the other replay is an error, not silently ignored."""
    # by name: Typer may bring its own copy of click, whose ParameterSource is another class
    sources = {n: getattr(ctx.get_parameter_source(n), "name", None) for n in ctx.params}
    given = [n for n, source in sources.items() if source in ("COMMANDLINE", "ENVIRONMENT")]
    wrong = [n for n in given if n in (_PLANT_ONLY if fleet else _FLEET_ONLY)]
    if wrong:
        flags = ", ".join("--" + n.replace("_", "-") for n in wrong)
        raise typer.BadParameter(
            f"{flags} applies to the NREL replay, not to --fleet (which replays --days of the fleet's "
            "second year)"
            if fleet
            else f"{flags} applies to --fleet only: add --fleet N (e.g. --fleet 50), or use --start/--end "
            "for the NREL replay"
        )


def _run_fleet(
    home: Path, plants: int, seed: int, fault_share: float, days: int, workers: int, policy: Path | None
) -> dict[str, Any]:
    try:
        import pvlib  # noqa: F401 (the fleet's clear sky and transposition)
    except ImportError:
        raise typer.BadParameter(
            "--fleet needs pvlib for the plants' clear sky: pip install 'maestrale[fleet]'"
        ) from None
    from maestrale.demo.fleet import run_fleet_demo

    return run_fleet_demo(
        home, plants=plants, seed=seed, fault_share=fault_share, days=days, workers=workers,
        policy_path=policy,
    )  # fmt: skip


def _run_plant(
    home: Path, fault_start: str, fault_loss: float, no_fault: bool, start: str, end: str, actual_delay: int,
    policy: Path | None,
) -> dict[str, Any]:  # fmt: skip
    from maestrale.demo import run_demo

    return run_demo(
        home,
        fault_start=None if no_fault else _date(fault_start),
        fault_loss=fault_loss,
        replay_start=_date(start),
        replay_end=_date(end),
        actual_delay=actual_delay,
        policy_path=policy,
    )


def _json(obj: object) -> str:
    return obj.isoformat() if isinstance(obj, date | datetime) else str(obj)


def register(app: typer.Typer) -> None:
    """Attach `demo` to the root app."""
    app.command("demo")(demo)
