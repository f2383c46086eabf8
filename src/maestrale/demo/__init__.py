"""`maestrale demo`: the closed loop on real data, embedded defaults (or RabbitMQ + PostgreSQL from the env).

NREL system 50 (Golden, Colorado) is replayed as a plant in production from April 2012 to December
2013. A model trained on the first months forecasts each next day; actuals arrive a day late; from
`--fault-start` the plant loses `--fault-loss` of its capacity. The monitor detects it, asks the
training service for a retraining on the recent data, scores the challenger against the champion
on the same out-of-sample days and promotes it only if it is better.

>>> summary = run_demo(Path(".demo"), fault_start=date(2012, 7, 2), fault_loss=0.2)  # doctest: +SKIP
>>> summary["detections"][0], summary["promotions"][0]  # doctest: +SKIP
('2012-07-04', {'date': '2012-07-09', 'version': 2})
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from maestrale.demo.scenario import (
    DEFAULT_FAULT_LOSS,
    DEFAULT_FAULT_START,
    MODEL,
    REPLAY_END,
    REPLAY_START,
)

__all__ = ["DEFAULT_FAULT_LOSS", "DEFAULT_FAULT_START", "run_demo"]

_STYLE = {
    "breach": "yellow",
    "retrain": "cyan",
    "trained": "cyan",
    "promoted": "bold green",
    "rejected": "magenta",
    "failed": "bold red",
    "served": "green",
    "fault": "bold red",
}


def run_demo(
    home: Path,
    *,
    fault_start: date | None = DEFAULT_FAULT_START,
    fault_loss: float = DEFAULT_FAULT_LOSS,
    replay_start: date = REPLAY_START,
    replay_end: date = REPLAY_END,
    actual_delay: int = 1,
    policy_path: Path | None = None,
    console: Console | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Run the replay in `home` and return the summary (see `maestrale.demo.summary`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from maestrale.config import load_settings
    from maestrale.demo.replay import Replay, TimelineEvent
    from maestrale.demo.scenario import DataLake, build_scenario, initial_spec
    from maestrale.demo.summary import plot_loop, summarise
    from maestrale.monitoring.policy import default_policy, load_policy
    from maestrale.monitoring.service import MonitorService
    from maestrale.registry.client import Registry
    from maestrale.training.requests import TrainingRequests
    from maestrale.training.service import EmbeddedService, wait_for

    t_start = time.perf_counter()
    console = console or Console(width=max(120, Console().width))
    settings = load_settings(home=home)
    policy = load_policy(policy_path) if policy_path else default_policy()
    scenario = build_scenario(fault_start, fault_loss)
    lake = DataLake(home / "lake" / "nrel-50.parquet", scenario)
    # the demo is the admin of its own training worker: requests may read its lake, wherever --home is
    lake_folder = str(lake.path.parent.resolve())
    settings = settings.model_copy(update={"data_sources": [*(settings.data_sources or []), lake_folder]})
    registry = Registry(settings=settings, actor="demo")
    requests = TrainingRequests(settings.database_url or "")

    console.rule("[bold]Maestrale demo: the closed loop on NREL system 50")
    fault = f"{fault_loss:.0%} capacity loss from {fault_start}" if fault_start else "no fault (clean run)"
    console.print(
        f"registry {registry.location}\nbus {settings.broker_url} · replay {replay_start} → {replay_end} · "
        f"actuals {actual_delay} day late · {fault} · policy [bold]{policy.name}[/]"
    )
    for c in policy.conditions:
        console.print(f"  condition {c.name}: {c.describe()} → {', '.join(policy.actions_of(c))}")

    with (
        EmbeddedService(settings),
        MonitorService(settings, policies=[policy], interval=None, relay=False) as monitor,
    ):
        lake.deliver_until(_utc_midnight(replay_start))
        t0 = time.perf_counter()
        record = requests.submit(
            initial_spec(lake.uri, scenario.capacity), requested_by="demo", reason="initial"
        )[0]
        done = wait_for(requests, [record.id], timeout=900)[0]
        if done.status != "completed":
            raise RuntimeError(f"the initial training failed: {done.error}")
        first = registry.get_version(f"{MODEL}:{done.version}")
        registry.set_alias(MODEL, "champion", first.version, reason="initial training")
        console.print(
            f"trained {first.ref} through the training service in {time.perf_counter() - t0:.1f} s: "
            f"holdout nMAE {first.metrics['nmae']:.4f}, "
            f"skill vs persistence {first.metrics.get('skill', float('nan')):.3f} "
            f"→ champion"
        )

        def show(e: TimelineEvent) -> None:
            if e.kind == "breach" and not e.detail.get("opened", True) and "→ retraining" not in e.text:
                return  # the episode was shown when it opened: one line per alert, not one per day
            style = _STYLE.get(e.kind, "")
            bar.console.print(f"{e.day}  [{style}]{e.kind:<9}[/] {e.text}")

        server = _start_server(settings, console)
        replay = Replay(
            settings, scenario, lake, registry, monitor, actual_delay=actual_delay, on_event=show,
            server=server,
        )  # fmt: skip
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        days = (replay_end - replay_start).days + 1
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("replaying days", total=days)
            if fault_start:
                bar.console.print(
                    f"{fault_start}  [bold red]fault    [/] the plant loses {fault_loss:.0%} of its capacity"
                )
            try:
                log = replay.run(replay_start, replay_end, progress=lambda d: bar.update(task, advance=1))
                served = _show_v2(console, server, replay) if server is not None else None
            finally:
                if server is not None:
                    server.stop()
    elapsed = time.perf_counter() - t_start
    summary = summarise(monitor.store, log, scenario, first, registry.load(first.ref), elapsed)
    plot = plot_loop(home, monitor.store, log, scenario)
    summary["plot"] = str(plot) if plot else None
    summary["served"] = served
    if report:
        summary["report"] = _write_report(home, monitor.store, registry, console)
    _print_summary(console, summary, log)
    # the same world in the web UI: embedded settings resolve from the home, no token on a laptop
    console.print(
        f"browse it: MAESTRALE_HOME={home} MAESTRALE_AUTH=false maestrale server, then open http://127.0.0.1:8080/"
    )
    return summary


def _start_server(settings: Any, console: Console) -> Any:
    """The V2 model server for the replay, or None (with a note) without the server extra."""
    from maestrale.demo.serving import DemoServer

    try:
        server = DemoServer(settings, f"{MODEL}@champion").start()
    except ImportError as exc:  # uvicorn, fastapi and httpx come with the server extra
        console.print(
            f"[dim]no model server ({exc.name} is missing: pip install 'maestrale[server]'); the "
            "forecasting service loads the champion itself[/]"
        )
        return None
    console.print(
        f"model server (V2) at {server.url}: {MODEL}@champion → v{server.served_version(MODEL)}; "
        "the forecasting service calls POST /v2/models/pv-nrel-50/infer"
    )
    return server


def _show_v2(console: Console, server: Any, replay: Any) -> dict[str, Any]:
    """One V2 request to the model server for the last replayed day, shown as a client sees it."""
    import json

    import numpy as np

    from maestrale.demo.serving import v2_request

    day = max(replay.log.served) if replay.log.served else REPLAY_END
    X = replay.inputs.loc[replay.scenario.local_day(day).index].iloc[10:13].reset_index()
    t0 = time.perf_counter()
    predictions, version = server.infer(MODEL, X)
    ms = 1000 * (time.perf_counter() - t0)
    same = bool(np.allclose(predictions, replay.registry.load(f"{MODEL}:{version}").predict(X)))
    first = v2_request(X.round(dict.fromkeys(X.select_dtypes("number").columns, 3)))["inputs"][0]
    console.print(
        f"POST {server.url}/v2/models/{MODEL}/infer with {X.shape[1]} inputs like {json.dumps(first)}\n"
        f"  → model_version {version}, outputs[predict] {np.round(predictions, 3).tolist()} kW "
        f"in {ms:.1f} ms "
        f"(equal to the registry's {MODEL}:{version}: {same})"
    )
    return {"url": server.url, "model_version": version, "ms": round(ms, 2), "equal": same}


def _utc_midnight(day: date) -> Any:
    import pandas as pd

    from maestrale.demo.scenario import SITE_TZ

    return pd.Timestamp(day, tz=SITE_TZ).tz_convert("UTC")


def _write_report(home: Path, store: Any, registry: Any, console: Console) -> str | None:
    try:
        from maestrale.monitoring.report import write_report
    except ImportError:
        return None
    try:
        path = write_report(store, registry, MODEL, home / f"report-{MODEL}.html")
    except Exception as exc:  # the loop ran; a missing plotting extra must not fail the demo
        console.print(f"[dim]report skipped: {exc}[/]")
        return None
    return str(path)


def _print_summary(console: Console, s: dict[str, Any], log: Any) -> None:
    from rich.table import Table

    table = Table(title="the loop in figures", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        (
            "fault",
            f"{s['fault_loss']:.0%} from {s['fault_start']}" if s["fault_start"] else "none (clean run)",
        ),
        ("detections", ", ".join(s["detections"]) or "none"),
        (
            "detection delay",
            f"{s['detection_delay_days']} day(s) of actuals"
            if s["detection_delay_days"] is not None
            else "-",
        ),
        ("retrainings", ", ".join(s["retrains"]) or "none"),
        ("promotions", ", ".join(f"v{p['version']} on {p['date']}" for p in s["promotions"]) or "none"),
        (
            "rejected challengers",
            ", ".join(f"v{p['version']} on {p['date']}" for p in s["rejections"]) or "none",
        ),
        ("nMAE 14 days before the fault", _fmt(s["nmae_before_fault"])),
        ("nMAE fault → promotion (old champion)", _fmt(s["nmae_after_fault"])),
        ("nMAE 14 days after the promotion", _fmt(s["nmae_after_promotion"])),
        ("nMAE days 14–28 after the promotion", _fmt(s["nmae_two_weeks_later"])),
        (
            "nMAE of the replay: served · first version never retrained",
            f"{_fmt(s['nmae_overall'])} · {_fmt(s['nmae_without_loop'])}",
        ),
        (
            "evaluations · predictions · actuals",
            f"{s['evaluations']} · {s['predictions']:,} · {s['actuals']:,}",
        ),
        ("wall time", f"{s['elapsed_s']:.0f} s ({s['training_s']:.0f} s of it training)"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    for key in ("plot", "report"):
        if s.get(key):
            console.print(f"{key}: {s[key]}")
    console.print(
        "[dim]Data: NREL PVDAQ system 50 + NSRDB PSM3 weather, via pvanalytics (MIT). The weather stands in "
        "for a weather forecast.[/]"
    )


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _days(n: int) -> timedelta:
    return timedelta(days=n)
