"""The demo's figures (the `--summary` JSON) and its plot of the loop."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.demo.replay import ReplayLog
    from maestrale.demo.scenario import Scenario
    from maestrale.monitoring.store import MonitorStore

#: Length of the before/after windows the summary compares.
SPAN = timedelta(days=14)


def served_pairs(store: MonitorStore, scenario: Scenario, features: bool = False) -> pd.DataFrame:
    """Every logged forecast joined to its actual, with the local forecast day."""
    from datetime import UTC, datetime

    from maestrale.demo.scenario import MODEL, SITE_TZ

    frame = store.scored(
        MODEL, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), features=features
    )
    frame["day"] = frame["target_time"].dt.tz_convert(SITE_TZ).dt.date
    frame["abs_error"] = (frame["prediction"] - frame["actual"]).abs()
    return frame


def nmae_between(pairs: pd.DataFrame, start: date | None, end: date | None, capacity: float) -> float | None:
    """Pooled nMAE of the served forecasts for local days [start, end)."""
    if start is None or end is None:
        return None
    sel = pairs[(pairs["day"] >= start) & (pairs["day"] < end)]
    return None if sel.empty else round(float(sel["abs_error"].mean() / capacity), 6)


def summarise(
    store: MonitorStore,
    log: ReplayLog,
    scenario: Scenario,
    first: Any,
    first_model: Any,
    elapsed: float,
) -> dict[str, Any]:
    """The summary: fault, detections, retrains, promotions and the nMAE before/after (pooled, hourly).

    `first`/`first_model` are the initial champion's version and model: scoring it on every logged
    input gives the counterfactual "no monitoring" figures (`nmae_without_loop`).
    """
    from maestrale.monitoring.promotion import challenger_inputs

    pairs = served_pairs(store, scenario, features=True)
    # the first champion's inputs for every logged row, as the monitor builds a challenger's
    inputs = challenger_inputs(first, pairs)
    pairs["first_error"] = (first_model.predict(inputs) - pairs["actual"]).abs()
    fault = scenario.fault_start
    breach_days = sorted({e.day for e in log.events if e.kind == "breach" and e.detail.get("retrain_action")})
    # a detection is the first day of a run of breached days (a breach lasting a week is one detection)
    detections = [d for i, d in enumerate(breach_days) if i == 0 or (d - breach_days[i - 1]).days > 1]
    alert_days = sorted(
        {e.day for e in log.events if e.kind == "breach" and not e.detail.get("retrain_action")}
    )
    retrains = sorted({e.day for e in log.events if e.kind == "retrain"})
    promotions = [e for e in log.events if e.kind == "promoted"]
    rejections = [e for e in log.events if e.kind == "rejected"]
    after = [d for d in detections if fault and d >= fault]
    first_detection = after[0] if after else None
    promoted_after = next((p for p in promotions if fault and p.day >= fault), None)
    cap = scenario.capacity
    delay = None
    if first_detection is not None and fault is not None:
        # days of faulty actuals the monitor had seen when it fired (actuals of day D arrive on D+1)
        delay = (first_detection - fault).days
    p_day = promoted_after.day if promoted_after else None
    return {
        "fault_start": fault.isoformat() if fault else None,
        "fault_loss": scenario.fault_loss if fault else 0.0,
        "first_version": first.version,
        "detections": [d.isoformat() for d in detections],
        "breach_days": len(breach_days),
        "detection_delay_days": delay,
        "alert_days": len(alert_days),  # breaches of alert-only conditions (drift, nMAE vs training)
        # alerts as a person gets them: repeated breaches of one condition are one episode
        "alert_episodes": len({e.detail.get("episode") for e in log.events if e.kind == "breach"} - {None}),
        "retrains": [d.isoformat() for d in retrains],
        "promotions": [{"date": p.day.isoformat(), "version": p.version} for p in promotions],
        "rejections": [{"date": p.day.isoformat(), "version": p.version} for p in rejections],
        "nmae_before_fault": nmae_between(pairs, fault - SPAN if fault else None, fault, cap),
        "nmae_after_fault": nmae_between(pairs, fault, p_day or (fault + SPAN if fault else None), cap),
        "nmae_after_promotion": nmae_between(pairs, p_day, p_day + SPAN if p_day else None, cap),
        "nmae_two_weeks_later": nmae_between(
            pairs, p_day + SPAN if p_day else None, p_day + 2 * SPAN if p_day else None, cap
        ),
        "nmae_overall": round(float(pairs["abs_error"].mean() / cap), 6) if len(pairs) else None,
        # the same rows forecast by the first champion, never retrained: what the loop changed
        "nmae_without_loop": round(float(pairs["first_error"].mean() / cap), 6) if len(pairs) else None,
        "nmae_after_fault_served": _mean(pairs, "abs_error", fault, cap),
        "nmae_after_fault_without_loop": _mean(pairs, "first_error", fault, cap),
        "evaluations": log.evaluations,
        "predictions": log.published_predictions,
        "actuals": log.published_actuals,
        "training_s": round(log.training_s, 1),
        "elapsed_s": round(elapsed, 1),
        "timeline": [
            {"date": e.day.isoformat(), "kind": e.kind, "text": e.text, "version": e.version}
            for e in log.events
        ],
    }


def _mean(pairs: pd.DataFrame, column: str, since: date | None, capacity: float) -> float | None:
    if since is None:
        return None
    sel = pairs[pairs["day"] >= since]
    return None if sel.empty else round(float(sel[column].mean() / capacity), 6)


def plot_loop(home: Path, store: MonitorStore, log: ReplayLog, scenario: Scenario) -> Path | None:
    """`demo-loop.png`: weekly nMAE of the served forecasts with the fault, detections and promotions."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import pandas as pd

    pairs = served_pairs(store, scenario)
    if pairs.empty:
        return None
    daily = pairs.groupby("day").agg(
        err=("abs_error", "mean"), pred=("prediction", "sum"), act=("actual", "sum")
    )
    daily.index = pd.to_datetime(daily.index)
    nmae7 = daily["err"].rolling(7, min_periods=4).mean() / scenario.capacity
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[3, 2])
    ax.plot(daily.index, daily["err"] / scenario.capacity, color="0.8", linewidth=0.8, label="daily nMAE")
    ax.plot(nmae7.index, nmae7, color="tab:blue", linewidth=1.6, label="7-day nMAE (served forecasts)")
    if scenario.fault_start:
        for a in (ax, ax2):
            a.axvline(pd.Timestamp(scenario.fault_start), color="tab:red", linewidth=1.5)
        label = f" fault −{scenario.fault_loss:.0%}"
        # x in data, y in axes coordinates: the label stays inside whatever the y range becomes
        ax.text(pd.Timestamp(scenario.fault_start), 0.5, label, color="tab:red", va="center",
                transform=ax.get_xaxis_transform())  # fmt: skip
    marks = {
        "breach": ("tab:orange", "v", "breach"),
        "retrain": ("tab:cyan", "^", "retrain requested"),
        "promoted": ("tab:green", "*", "promoted"),
        "rejected": ("tab:purple", "x", "challenger rejected"),
    }
    top = float(np.nanmax(nmae7.to_numpy())) if nmae7.notna().any() else 0.1
    for kind, (color, marker, label) in marks.items():
        days = sorted({pd.Timestamp(e.day) for e in log.events if e.kind == kind})
        if days:
            ax.scatter(days, [top * 1.1] * len(days), color=color, marker=marker, s=60, label=label, zorder=3)
    for e in log.events:
        if e.kind == "promoted":
            ax.annotate(f"v{e.version}", (pd.Timestamp(e.day), top * 1.1), textcoords="offset points",
                        xytext=(0, 8), ha="center", color="tab:green")  # fmt: skip
    ax.set_ylabel("nMAE (by capacity)")
    ax.set_ylim(0, top * 1.7)  # room above the curve for the event markers and the legend
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    ax.set_title("NREL system 50 replayed as production: monitoring, retraining and promotion")
    ax2.plot(daily.index, daily["act"], color="black", linewidth=0.8, label="measured kWh/day")
    ax2.plot(daily.index, daily["pred"], color="tab:orange", linewidth=0.8, label="forecast kWh/day")
    ax2.set_ylabel("energy (kWh/day)")
    ax2.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = home / "demo-loop.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
