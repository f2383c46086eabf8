"""The fleet demo's figures: the monitor scored against the faults it was not told about, and the costs.

- **Detection** of a fault: the first day on or after its start on which a condition that retrains
  (shortfall, skill) breached on that plant; `days_to_detect` counts the days of faulty actuals the
  monitor had seen by then (the actuals of day D arrive on D + 1). **Recall** per fault kind: the
  share of faulted plants detected before the replay ended (and within 3 days). **Precision** per
  kind: of the alerts (alert episodes opened by retraining conditions) on plants with that fault,
  the share raised on or after its start; `overall` counts every plant, healthy ones included.
- **False alarms**: alerts, retrainings and promotions on healthy plants (no fault; wind farms
  included), per healthy plant-year.
- **nMAE**: mean absolute error of the logged forecasts over the installed capacity, fleet-wide
  (capacity-weighted: total error over total capacity-hours), with the loop (what was served) and
  without it (the first champions' forecasts of the same hours, never retrained).
- **CPU seconds per plant per simulated day** for ingest, monitoring, training (this process while
  it waited for retrainings plus the training jobs' processes) and forecasting.

>>> summary = summarise(world, log, policy, initial=initial, elapsed=93.0)  # doctest: +SKIP
>>> sorted(summary["detection"])  # doctest: +SKIP
['abrupt', 'offset', 'overall', 'shading', 'soiling']
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rich.console import Console

    from maestrale.demo.fleet_loop import FleetLog
    from maestrale.demo.fleet_world import FleetWorld
    from maestrale.monitoring.policy import Policy

WITHIN_DAYS = 3  # the target: an abrupt loss detected within 3 days of faulty actuals


def _dist(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "min": None, "median": None, "p90": None, "max": None}
    a = np.asarray(values, dtype="float64")
    return {
        "n": len(values), "min": int(a.min()), "median": float(np.median(a)),
        "p90": float(np.percentile(a, 90)), "max": int(a.max()),
    }  # fmt: skip


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def faults(world: FleetWorld, log: FleetLog) -> list[dict[str, Any]]:
    """One row per faulted plant: the fault, when the monitor detected it, what the loop did."""
    breach_days: dict[int, list[int]] = defaultdict(list)
    for day, plant, _, retrain in log.breaches:
        if retrain:
            breach_days[plant].append(day)
    rows = []
    for p in world.plants:
        fault = p.site.fault
        if fault is None:
            continue
        start = (fault.start - world.start).days
        if start >= world.days:
            continue  # after the replayed days: never seen
        detected = min((d for d in breach_days[p.index] if d >= start), default=None)
        events = [e for e in log.events if e.plant == p.index and e.day >= start]
        rows.append({
            "plant": p.name, "kind": fault.kind, "start": fault.start.date().isoformat(), "start_day": start,
            "magnitude": round(fault.magnitude, 4), "fault": fault.describe(),
            "detected": world.day_start(detected).date().isoformat() if detected is not None else None,
            "days_to_detect": detected - start if detected is not None else None,
            "retrains": sum(1 for e in events if e.kind == "retrain"),
            "promotions": sum(1 for e in events if e.kind == "promoted"),
            **_plant_nmae(world, p.index, start),
        })  # fmt: skip
    return rows


def _plant_nmae(world: FleetWorld, index: int, start_day: int) -> dict[str, float | None]:
    hours = slice(start_day * 24, world.days * 24)
    actual = world.actual(index, hours)
    cap = world.plants[index].capacity
    served = np.abs(np.asarray(world.served[index, hours], dtype="float64") - actual)
    first = np.abs(np.asarray(world.first[index, hours], dtype="float64") - actual)
    return {
        "nmae_after_fault": _ratio(float(np.nanmean(served)), cap) if len(actual) else None,
        "nmae_after_fault_without_loop": _ratio(float(np.nanmean(first)), cap) if len(actual) else None,
    }


def detection(rows: list[dict[str, Any]], world: FleetWorld, log: FleetLog) -> dict[str, Any]:
    """Recall, precision and days to detect per fault kind, and overall."""
    kind_of = {p.index: (p.site.fault.kind if p.site.fault else None) for p in world.plants}
    start_of = {p.index: (p.site.fault.start - world.start).days for p in world.plants if p.site.fault}
    alerts: dict[str, list[bool]] = defaultdict(list)  # kind -> [alert after its fault start?]
    for e in log.events:
        if e.kind == "alert" and e.retrain:
            kind = kind_of.get(e.plant) or "healthy"
            true = kind != "healthy" and e.day >= start_of[e.plant]
            alerts[kind].append(true)
            alerts["overall"].append(true)
    out: dict[str, Any] = {}
    kinds = sorted({r["kind"] for r in rows})
    for kind in [*kinds, "overall"]:
        sel = [r for r in rows if r["kind"] == kind or kind == "overall"]
        delays = [r["days_to_detect"] for r in sel if r["days_to_detect"] is not None]
        flags = alerts.get(kind, [])
        out[kind] = {
            "faults": len(sel),
            "detected": len(delays),
            "recall": _ratio(len(delays), len(sel)),
            f"recall_within_{WITHIN_DAYS}_days": _ratio(sum(1 for d in delays if d <= WITHIN_DAYS), len(sel)),
            "alerts": len(flags),
            "precision": _ratio(sum(flags), len(flags)),
            "days_to_detect": _dist(delays),
        }
    return out


def healthy(world: FleetWorld, log: FleetLog) -> dict[str, Any]:
    """Alerts, retrainings and promotions on the plants without a fault: false alarms."""
    ok = {p.index for p in world.plants if p.site.fault is None}
    years = len(ok) * world.days / 365.0
    counts: dict[str, int] = defaultdict(int)
    for e in log.events:
        if e.plant in ok:
            key = f"{e.kind}_retrain" if e.kind == "alert" and e.retrain else e.kind
            counts[key] += 1
    alerts = counts["alert_retrain"]
    return {
        "plants": len(ok), "plant_years": round(years, 3),
        "alerts": alerts, "alert_only_episodes": counts["alert"],
        "retrainings": counts["retrain"], "promotions": counts["promoted"],
        "false_alarms_per_plant_year": _ratio(alerts, years),
        "retrainings_per_plant_year": _ratio(counts["retrain"], years),
        "promotions_per_10_plant_years": _ratio(10 * counts["promoted"], years),
    }  # fmt: skip


def fleet_nmae(world: FleetWorld, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Capacity-weighted nMAE with and without the loop: the fleet, the faulted plants after their
    fault, and the healthy plants."""
    start_of = {r["plant"]: r["start_day"] for r in rows}
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # served err, first err, cap-h
    for p in world.plants:
        actual = world.actual(p.index, slice(0, world.days * 24))
        served = np.abs(np.asarray(world.served[p.index], dtype="float64") - actual)
        first = np.abs(np.asarray(world.first[p.index], dtype="float64") - actual)
        ok = np.isfinite(actual)
        groups = [("fleet", slice(None))]
        if p.name in start_of:
            groups.append(("faulted_after_fault", slice(start_of[p.name] * 24, None)))
        else:
            groups.append(("healthy", slice(None)))
        for group, hours in groups:
            sel = ok[hours]
            s = sums[group]
            s[0] += float(served[hours][sel].sum())
            s[1] += float(first[hours][sel].sum())
            s[2] += p.capacity * int(sel.sum())
    return {g: {"with_loop": _ratio(s[0], s[2]), "without_loop": _ratio(s[1], s[2])} for g, s in sums.items()}


def summarise(
    world: FleetWorld, log: FleetLog, policy: Policy, *, initial: dict[str, Any], elapsed: float
) -> dict[str, Any]:
    """The `--summary` JSON of `maestrale demo --fleet` (see the module docstring)."""
    rows = faults(world, log)
    plant_days = len(world.plants) * world.days
    cpu = log.cpu
    per_day = {
        "ingest": cpu["ingest"], "monitoring": cpu["monitoring"],
        "training": cpu["training"] + cpu["training_jobs"], "forecast": cpu["forecast"],
    }  # fmt: skip
    pv = sum(1 for p in world.plants if p.kind == "pv")
    models = len(initial["versions"])
    out: dict[str, Any] = {
        "plants": len(world.plants), "pv": pv, "wind": len(world.plants) - pv, "days": world.days,
        "replay_start": world.start.date().isoformat(), "replay_end": world.times[-1].date().isoformat(),
        "detection": detection(rows, world, log),
        "healthy": healthy(world, log),
        "nmae": fleet_nmae(world, rows),
        "cpu_s_per_plant_day": {k: round(v / plant_days, 6) for k, v in per_day.items()},
        "cpu_s": {k: round(v, 2) for k, v in {**per_day, "training_jobs": cpu["training_jobs"]}.items()},
        "wall_s": {k: round(v, 2) for k, v in log.wall.items()},
        "initial_training": {
            "models": models, "wall_s": round(initial["wall_s"], 2),
            "cpu_s_per_model": round((initial["cpu_s"] + initial["jobs_cpu_s"]) / models, 4),
            "median_holdout_nmae": _median([v for v in initial["nmae"].values() if v is not None]),
        },
        "evaluations": log.evaluations, "predictions": log.predictions, "actuals": log.actuals,
        "retrainings": log.count("retrain"), "trained": log.count("trained"), "failed": log.count("failed"),
        "promotions": log.count("promoted"), "rejections": log.count("rejected") + log.count("expired"),
        "faults": rows,
    }  # fmt: skip
    out["events"] = [
        {"date": world.day_start(e.day).date().isoformat(), "plant": world.plants[e.plant].name,
         "kind": e.kind, "condition": e.condition, "version": e.version}
        for e in log.events if e.plant >= 0
    ]  # fmt: skip
    out["elapsed_s"] = round(elapsed, 1)
    return out


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 5) if values else None


def print_summary(console: Console, s: dict[str, Any]) -> None:
    """The figures as two tables: detection per fault kind, then false alarms, accuracy and costs."""
    from rich.table import Table

    det = Table(title="detection per fault kind (the monitor was not told)", title_justify="left")
    for col in ("kind", "faults", "detected", "recall", f"≤ {WITHIN_DAYS} days", "precision",
                "days to detect min / median / p90 / max"):  # fmt: skip
        det.add_column(col)
    for kind, d in s["detection"].items():
        dd = d["days_to_detect"]
        spread = "-" if dd["n"] == 0 else f"{dd['min']} / {dd['median']:g} / {dd['p90']:.1f} / {dd['max']}"
        det.add_row(
            kind, str(d["faults"]), str(d["detected"]), _fmt(d["recall"]),
            _fmt(d[f"recall_within_{WITHIN_DAYS}_days"]), f"{_fmt(d['precision'])} of {d['alerts']}", spread,
        )  # fmt: skip
    console.print(det)
    h, n, c = s["healthy"], s["nmae"], s["cpu_s_per_plant_day"]
    table = Table(title="the loop in figures", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    it = s["initial_training"]
    ms = " · ".join(f"{c[k] * 1000:.2f}" for k in ("ingest", "monitoring", "training", "forecast"))
    rows = [
        ("healthy plants", f"{h['plants']} ({h['plant_years']:g} plant-years)"),
        ("their alerts · retrainings · promotions",
         f"{h['alerts']} · {h['retrainings']} · {h['promotions']} "
         f"({_fmt(h['promotions_per_10_plant_years'])} promotions per 10 plant-years)"),
        ("retrainings · promotions · rejected (fleet)",
         f"{s['retrainings']} · {s['promotions']} · {s['rejections']}"),
        ("fleet nMAE with the loop · without",
         f"{_fmt(n['fleet']['with_loop'])} · {_fmt(n['fleet']['without_loop'])}"),
    ]  # fmt: skip
    if "faulted_after_fault" in n:
        f = n["faulted_after_fault"]
        rows.append(("faulted plants after the fault", f"{_fmt(f['with_loop'])} · {_fmt(f['without_loop'])}"))
    rows += [
        ("CPU per plant-day: ingest · monitoring · training · forecast", f"{ms} ms"),
        ("initial training",
         f"{it['models']} models in {it['wall_s']:.0f} s, {it['cpu_s_per_model']:.2f} CPU s each"),
        ("evaluations · predictions · actuals",
         f"{s['evaluations']:,} · {s['predictions']:,} · {s['actuals']:,}"),
        ("wall time", f"{s['elapsed_s']:.0f} s"),
    ]  # fmt: skip
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(
        "[dim]Data: PVGIS © European Union, 2001-2024; Linke turbidity climatology shipped with pvlib "
        "(BSD-3-Clause); Enercon E-126/4200 power curve from the Open Energy Platform's wind turbine "
        "library (© Reiner Lemoine Institut, ODbL 1.0).[/]"
    )


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
