"""`maestrale demo --fleet N`: the closed loop on a synthetic fleet of N plants across Italy.

N PV plants (and a wind farm per 25 of them) are built from physics and real weather statistics
(`maestrale.datasets.fleet`); a seeded share of the PV plants gets a fault at a random date of the
replayed year (abrupt capacity loss, soiling, shading, meter offset). One fleet training spec trains
a model per plant on the first year, through the training service (`--workers` jobs at once, each in
its own process). The second year is then replayed day by day (`maestrale.demo.fleet_loop`): each
plant's champion forecasts the next day, actuals arrive a day late, the monitor evaluates every
plant with the default policy, breaches request retrainings, and a challenger is promoted only if it
beats its champion out of sample. The summary (`maestrale.demo.fleet_summary`) scores the monitor
against the faults it was not told about.

>>> summary = run_fleet_demo(Path(".demo"), plants=50, days=120)  # doctest: +SKIP
>>> summary["detection"]["abrupt"]["recall"]  # doctest: +SKIP
1.0
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from maestrale.datasets.fleet import Fleet
    from maestrale.demo.fleet_world import FleetWorld

__all__ = ["fleet_spec", "run_fleet_demo"]

FLEET = "italy"
_STYLE = {"alert": "yellow", "promoted": "bold green", "rejected": "magenta", "expired": "magenta"}


def fleet_spec(world: FleetWorld) -> dict[str, Any]:
    """The one training spec of the fleet: a model per plant on the first year, read from the lake.

    PV plants build their features from the weather (`pv_features`: calendar and clear-sky terms);
    wind farms take their wind, direction, density and temperature as they are.
    """
    from maestrale.demo.fleet_world import INPUTS, TARGET

    year = world.start.year - 1
    members: list[dict[str, Any]] = []
    for p in world.plants:
        member: dict[str, Any] = {"site": p.name, "kind": p.kind, "capacity": p.capacity}
        if p.kind == "wind":
            query = world.lake_query("wind").replace("{site}", p.name)
            member.update(
                data={"sql": {"url": world.lake_url, "query": query}},
                feature_set=None, features=list(INPUTS["wind"]),
            )  # fmt: skip
        members.append(member)
    return {
        "fleet": members,
        "name": "{site}",
        "description": "HistGradientBoosting day-ahead power of one plant of the Italian fleet",
        "data": {"sql": {"url": world.lake_url, "query": world.lake_query("pv")}},
        "time_column": "time",
        "timezone": "UTC",  # the lake's times are naive UTC
        "target": TARGET,
        "feature_set": "pv_features",
        "estimator": "hgb",
        "params": {"max_iter": 100, "learning_rate": 0.1, "random_state": 0},
        "train_window": {"start": f"{year}-01-01T00:00:00+00:00", "end": f"{year + 1}-01-01T00:00:00+00:00"},
        "split": {"holdout": {"test_start": f"{year}-12-01T00:00:00+00:00"}},
        "baselines": {"persistence": {"lag": "24h"}, "climatology": {"by": "hour_of_day"}},
        "tags": {"fleet": FLEET},
        "time_limit_s": 600,
    }


def run_fleet_demo(
    home: Path,
    *,
    plants: int,
    seed: int = 0,
    fault_share: float = 0.2,
    days: int = 365,
    workers: int = 2,
    policy_path: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Build the fleet in `home`, train, replay `days` days and return the summary."""
    from threadpoolctl import threadpool_limits

    from maestrale.config import load_settings
    from maestrale.datasets.fleet import synthetic_fleet
    from maestrale.demo.fleet_summary import print_summary, summarise
    from maestrale.demo.fleet_world import FleetWorld
    from maestrale.monitoring.policy import default_policy, load_policy
    from maestrale.monitoring.service import MonitorService
    from maestrale.registry.client import Registry
    from maestrale.training.requests import TrainingRequests
    from maestrale.training.service import EmbeddedService

    if workers < 1:
        raise ValueError(f"--workers {workers}: at least one training worker")
    t_start = time.perf_counter()
    console = console or Console(width=max(120, Console().width))
    policy = load_policy(policy_path) if policy_path else default_policy()
    fleet = synthetic_fleet(plants, seed=seed, fault_share=fault_share, replay_days=days)
    world = FleetWorld(home / "fleet", fleet, days)
    settings = load_settings(home=home)
    lake_folder = str(world.lake_path.parent.resolve())
    settings = settings.model_copy(update={"data_sources": [*(settings.data_sources or []), lake_folder]})
    registry = Registry(settings=settings, actor="demo")
    requests = TrainingRequests(settings.database_url or "")

    _print_header(console, fleet, world, policy.name, workers, registry.location, settings.broker_url)
    with _progress(console) as bar:
        task = bar.add_task("building the plants (first year → lake)", total=len(world.plants))
        world.build(lambda p: bar.update(task, advance=1))
    # The training jobs get their thread budget from the training service (cores / training slots).
    # This process's model calls (forecasts, the monitor scoring challengers) stay on one thread:
    # OpenMP threads spinning on cores the jobs use slowed an HGB fit from 0.3 s to 80 s here.
    with (
        threadpool_limits(1),
        EmbeddedService(settings, concurrency=workers),
        MonitorService(settings, policies=[policy], interval=None, relay=False) as service,
    ):
        initial = _train_fleet(console, world, requests, registry)
        log = _replay(console, world, settings, registry, service, policy, initial)
    summary = summarise(world, log, policy, initial=initial, elapsed=time.perf_counter() - t_start)
    summary.update(seed=seed, fault_share=fault_share, workers=workers, policy=policy.name)
    print_summary(console, summary)
    return summary


def _print_header(
    console: Console, fleet: Fleet, world: FleetWorld, policy: str, workers: int, registry: str, bus: str
) -> None:
    from rich.table import Table

    pv = sum(1 for p in world.plants if p.kind == "pv")
    console.rule(f"[bold]Maestrale demo: a fleet of {len(world.plants)} plants across Italy")
    last = world.times[-1].date()
    console.print(
        f"{pv} PV plants, {len(world.plants) - pv} wind farms · train on {world.start.year - 1}, replay "
        f"{world.start.date()} → {last} ({world.days} days) · {workers} training worker(s) · policy "
        f"[bold]{policy}[/]\nregistry {registry} · bus {bus}"
    )
    faulty = [s for s in fleet.sites if s.fault is not None]
    title = f"seeded faults ({len(faulty)} plants; the monitor is not told)"
    table = Table(title=title, title_justify="left")
    for col in ("plant", "kind", "from", "fault", "capacity kW", "lat, lon"):
        table.add_column(col)
    for s in sorted(faulty, key=lambda s: (s.fault.start, s.name) if s.fault else (0, s.name)):
        assert s.fault is not None
        table.add_row(
            s.name, s.fault.kind, s.fault.start.date().isoformat(), s.fault.describe(),
            f"{s.capacity_kw:,.0f}", f"{s.latitude:.2f}, {s.longitude:.2f}",
        )  # fmt: skip
    console.print(table)


def _progress(console: Console) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True)


def _train_fleet(console: Console, world: FleetWorld, requests: Any, registry: Any) -> dict[str, Any]:
    """Train the first champions from the fleet spec; returns their versions and the cost."""
    from maestrale.demo.fleet_loop import children_cpu

    c0, k0, t0 = time.process_time(), children_cpu(), time.perf_counter()
    records = requests.submit(fleet_spec(world), requested_by="demo", reason="initial")
    ids = [r.id for r in records]
    with _progress(console) as bar:
        task = bar.add_task("training the first champions", total=len(ids))
        done: dict[str, Any] = {}
        while len(done) < len(ids):
            for rec in requests.list(fleet_id=records[0].fleet_id, limit=len(ids)):
                if rec.done and rec.id not in done:
                    done[rec.id] = rec
                    bar.update(task, advance=1)
            time.sleep(0.2)
    failed = [r for r in done.values() if r.status != "completed"]
    if failed:
        first = failed[0]
        raise RuntimeError(f"{len(failed)} initial training(s) failed, e.g. {first.name}: {first.error}")
    versions = {done[i].name: int(done[i].version) for i in ids}
    for name, version in versions.items():
        registry.set_alias(name, "champion", version, reason="initial training")
    jobs_cpu_s = children_cpu() - k0
    cost: dict[str, Any] = {
        "versions": versions,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "jobs_cpu_s": children_cpu() - k0,
        "nmae": {name: done[i].metrics.get("nmae") for i, name in zip(ids, versions, strict=True)},
    }
    console.print(
        f"trained {len(ids)} models from one fleet spec in {cost['wall_s']:.1f} s "
        f"({jobs_cpu_s / len(ids):.2f} CPU s per model in the jobs) → champions"
    )
    return cost


def _replay(
    console: Console, world: FleetWorld, settings: Any, registry: Any, service: Any, policy: Any,
    initial: dict[str, Any],
) -> Any:  # fmt: skip
    from maestrale.demo.fleet_loop import FleetEvent, FleetReplay

    counts = {"alert": 0, "retrain": 0, "promoted": 0, "breach": 0}

    def show(e: FleetEvent) -> None:
        if e.kind in counts:
            counts[e.kind] += 1
        if e.kind == "alert" and e.retrain:
            counts["breach"] += 1  # an alert of a condition that retrains (shortfall, skill)
        if e.kind in ("promoted", "rejected", "expired") or (e.kind == "alert" and e.retrain):
            plant = world.plants[e.plant]
            day = world.day_start(e.day).date()
            style = _STYLE.get(e.kind, "")
            what = f"v{e.version} {e.text}" if e.kind != "alert" else f"{e.condition}: {e.text}"
            bar.console.print(f"{day}  {plant.name:<11} [{style}]{e.kind:<9}[/] {what}"[:220])

    replay = FleetReplay(world, settings, registry, service, policy, on_event=show)
    with _progress(console) as bar:
        task = bar.add_task("forecasts of the first champions", total=len(world.plants))
        with replay.phase("forecast"):
            for p in world.plants:
                replay.forecast_from(p.index, 0, initial["versions"][p.name], first=True)
                bar.update(task, advance=1)
        bar.remove_task(task)
        task = bar.add_task("replaying days", total=world.days)

        step, t0 = max(1, world.days // 20), time.perf_counter()

        def advance(day: int) -> None:
            what = f"{counts['alert']} alerts ({counts['breach']} that retrain), {counts['retrain']} "
            what += f"retrainings, {counts['promoted']} promotions"
            bar.update(task, advance=1, description=f"replaying days · {what}")
            if not console.is_terminal and ((day + 1) % step == 0 or day + 1 == world.days):
                # a log file or a pipe gets no progress bar: a line every 5% of the replay instead,
                # with the CPU so far per plant-day (a long run's partial figures)
                plant_days = len(world.plants) * (day + 1)
                cpu = " · ".join(
                    f"{k} {replay.log.cpu[k] / plant_days * 1000:.1f}" for k in ("ingest", "monitoring")
                )
                elapsed = time.perf_counter() - t0
                console.print(
                    f"day {day + 1}/{world.days} · {what} · {elapsed:.0f} s · CPU ms/plant-day {cpu}"
                )

        return replay.run(progress=advance)
