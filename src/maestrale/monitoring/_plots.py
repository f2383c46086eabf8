"""Figures of the monitoring report, drawn with matplotlib's object API on the Agg canvas.

No pyplot: pyplot keeps global state and picks a GUI backend, while the report must render the same
from a server thread, a notebook or a headless CI job without touching the caller's matplotlib setup.
Each function returns a PNG as a `data:` URI, ready for `<img src=…>`.

>>> uri = performance_png(store.series("pv-nrel-50", kind="performance"))  # doctest: +SKIP
>>> uri[:22]  # doctest: +SKIP
'data:image/png;base64,'

Inputs are the store's rows as they come (aware UTC times); times are made naive UTC before plotting,
so matplotlib never guesses a zone.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from maestrale.errors import MaestraleError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_HINT = "the monitoring report draws its plots with matplotlib: pip install 'maestrale[plot]'"
PSI_ALERT = 0.25  # the usual "significant shift" bound, also the default policy's drift threshold
DPI = 100
WIDTH = 10.0  # inches: 1000 px, readable on a laptop and in a mail client
MAX_FEATURES = 40  # heatmap rows; more become unreadable, the table below lists them all

# One colour per event kind, so a reader learns the timeline's legend once.
EVENT_STYLE: dict[str, tuple[str, str]] = {
    "breach": ("o", "tab:red"),
    "retrain": ("^", "tab:orange"),
    "promoted": ("*", "tab:green"),
    "rejected": ("X", "tab:gray"),
    "expired": ("X", "tab:brown"),
    "alias": ("D", "tab:blue"),
}


class PlotDependencyMissing(MaestraleError, ImportError):
    """matplotlib is not installed (an ImportError too, so `except ImportError` callers still work)."""

    code = "missing_dependency"


def require_matplotlib() -> None:
    """Fail early, before any query, with the install hint if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotDependencyMissing(PLOT_HINT) from None


def _figure(height: float, rows: int = 1, **kw: Any) -> tuple[Figure, Any]:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, attached to this figure only (no global backend switch)
    return fig, fig.subplots(rows, 1, squeeze=False, **kw)[:, 0]


def to_data_uri(fig: Figure) -> str:
    """The figure as an inline PNG; the "Software" tag is dropped so the same data gives the same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _dates(ax: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)


def naive(dt: datetime) -> datetime:
    """Naive UTC; a naive input is already UTC (SQLite hands times back without their zone)."""
    return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)


def pick_metric(evals: Sequence[dict[str, Any]], *names: str) -> str:
    """The first of `names` any evaluation carries (nMAE needs a capacity; MAE always exists)."""
    return next((m for m in names if any(m in e["values"].get("overall", {}) for e in evals)), names[-1])


def performance_png(evals: Sequence[dict[str, Any]], fallback_training: float | None = None) -> str:
    """Top: nMAE (or MAE) per window, the serving version's training value dashed, version changes
    marked; bottom: nbias (or bias). `evals` are performance evaluations, oldest first."""
    metric, bias = pick_metric(evals, "nmae", "mae"), pick_metric(evals, "nbias", "bias")
    fig, (ax, bx) = _figure(6.0, 2, sharex=True, height_ratios=[3, 2])
    for panel, name in ((ax, metric), (bx, bias)):
        for window in dict.fromkeys(e["window"] for e in evals):
            points = [(naive(e["as_of"]), e["values"]["overall"][name]) for e in evals
                      if e["window"] == window and name in e["values"].get("overall", {})]  # fmt: skip
            if points:
                x, y = zip(*points, strict=True)
                panel.plot(x, y, marker="o", markersize=3, label=f"{name} over {window}")
        panel.set_ylabel(name)
    training = [(naive(e["as_of"]), e["values"]["training"][metric]) for e in evals
                if metric in e["values"].get("training", {})]  # fmt: skip
    if not training and fallback_training is not None:  # evaluations without it: the champion's, flat
        training = [
            (naive(evals[0]["as_of"]), fallback_training),
            (naive(evals[-1]["as_of"]), fallback_training),
        ]
    if training:
        x, y = zip(*training, strict=True)
        # a step: the training value belongs to the version serving from that evaluation on
        ax.step(x, y, where="post", linestyle="--", color="black", label=f"training {metric}")
    bx.axhline(0.0, color="black", linewidth=0.8)
    for prev, e in pairwise(evals):  # oldest first, so a change is where the version differs
        if e["version"] != prev["version"]:
            at = naive(e["as_of"])
            ax.axvline(at, color="tab:purple", linestyle=":", linewidth=1.2)
            bx.axvline(at, color="tab:purple", linestyle=":", linewidth=1.2)
            ax.annotate(f"v{e['version']}", (at, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", color="tab:purple", fontsize=9)  # fmt: skip
    bx.set_xlabel("evaluation time (data time, UTC)")
    for panel in (ax, bx):
        panel.legend(loc="upper left", fontsize=8)
        _dates(panel)
    return to_data_uri(fig)


def forecast_png(scored: pd.DataFrame, clock: datetime) -> str:
    """Top: prediction vs actual over the 14 days up to `clock`; bottom: daily means of all of `scored`.

    Several rows per target time (entities, lead times) are averaged, and the title says so.
    """
    frame = scored.assign(target_time=scored["target_time"].dt.tz_convert(None))
    averaged = bool(frame["target_time"].duplicated().any())
    by_time = frame.groupby("target_time")[["prediction", "actual"]].mean()
    recent = by_time[by_time.index > naive(clock - timedelta(days=14))]
    daily = frame.groupby(frame["target_time"].dt.floor("D"))[["prediction", "actual"]].mean()
    fig, (ax, bx) = _figure(6.0, 2)
    for panel, data, style in ((ax, recent, {}), (bx, daily, {"marker": "."})):
        panel.plot(data.index, data["actual"], color="black", linewidth=1.2, label="actual", **style)
        panel.plot(
            data.index, data["prediction"], color="tab:blue", linewidth=1.0, label="prediction", **style
        )
        panel.legend(loc="upper left", fontsize=8)
        _dates(panel)
    what = " (mean over entities and lead times)" if averaged else ""
    ax.set_title("last 14 days" + what, fontsize=10, loc="left")
    bx.set_title("daily means over the history (at most 365 days)" + what, fontsize=10, loc="left")
    return to_data_uri(fig)


def drift_png(evals: Sequence[dict[str, Any]]) -> tuple[str, int, int]:
    """Heatmap of PSI, features × evaluation dates (blank: not computed), from drift evaluations that
    have `stats`. Returns the PNG, how many features it shows and how many there are."""
    from matplotlib.colors import LinearSegmentedColormap

    features = list(dict.fromkeys(f for e in evals for f in e["values"]["stats"]))
    features.sort(key=lambda f: f == "<predictions>")  # the predictions row last, below the inputs
    psi = np.array([[(e["values"]["stats"].get(f) or {}).get("psi") for e in evals] for f in features],
                   dtype="float64")  # fmt: skip
    shown = features
    if len(features) > MAX_FEATURES:  # keep the features that drifted most, in their order
        worst = np.nan_to_num(np.nanmax(np.where(np.isnan(psi), -1.0, psi), axis=1), nan=-1.0)
        keep = sorted(np.argsort(-worst)[:MAX_FEATURES])
        shown, psi = [features[i] for i in keep], psi[keep]
    fig, (ax,) = _figure(min(12.0, 1.6 + 0.28 * len(shown)))
    colours = ["#f7fbff", "#fdd49e", "#d7301f", "#7f0000"]
    cmap = LinearSegmentedColormap.from_list("psi", colours).with_extremes(bad="#eeeeee")
    # the scale starts fixed at 0-0.5, so 0.1 looks the same in every report; it grows for big shifts
    vmax = max(0.5, float(np.nanmax(psi)) if np.isfinite(psi).any() else 0.5)
    image = ax.imshow(np.ma.masked_invalid(psi), aspect="auto", cmap=cmap, vmin=0.0, vmax=vmax,
                      interpolation="nearest")  # fmt: skip
    ax.set_yticks(range(len(shown)), labels=shown, fontsize=8)
    dates = [naive(e["as_of"]) for e in evals]
    ticks = list(range(0, len(dates), max(1, len(dates) // 10)))
    ax.set_xticks(ticks, labels=[dates[i].strftime("%Y-%m-%d") for i in ticks], fontsize=8, rotation=30)
    ax.set_xlabel("evaluation (data time, UTC)")
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label("PSI")
    bar.ax.axhline(PSI_ALERT, color="black", linewidth=1.0)
    return to_data_uri(fig), len(shown), len(features)


def retrain_id(breach: dict[str, Any]) -> str | None:
    """The training request a breach triggered, if one was submitted (else the action says why not)."""
    value = (breach.get("actions") or {}).get("retrain")
    return value if isinstance(value, str) and not value.startswith("not requested") else None


def timeline_png(
    breaches: Sequence[dict[str, Any]],
    decisions: Sequence[dict[str, Any]],
    aliases: Sequence[Any],
    period: tuple[datetime, datetime] | None,
) -> tuple[str | None, int]:
    """Markers per lane (breach per condition, retrain, decision per outcome, alias moves), styled by
    kind (`EVENT_STYLE`). Returns the PNG (None without events) and how many alias moves were left out.

    Alias moves carry wall-clock times while the monitor's events are in data time: only the moves
    inside the data `period` (± 1 day) are drawn, true in live operation; a backfill lists them only.
    """
    events: list[tuple[datetime, str, str]] = []
    requested: set[str] = set()
    for b in breaches:
        events.append((naive(b["as_of"]), f"breach: {b['condition']}", "breach"))
        rid = retrain_id(b)
        if rid is not None and rid not in requested:  # one request answers every breach of a tick
            requested.add(rid)
            events.append((naive(b["as_of"]), "retrain requested", "retrain"))
    events += [(naive(x["as_of"]), f"decision: {x['outcome']}", x["outcome"]) for x in decisions]
    span = (
        None
        if period is None
        else (naive(period[0]) - timedelta(days=1), naive(period[1]) + timedelta(days=1))
    )
    inside = [a for a in aliases if span is not None and span[0] <= naive(a.at) <= span[1]]
    events += [(naive(a.at), f"alias: {a.alias}", "alias") for a in inside]
    if not events:
        return None, len(aliases)
    events.sort(key=lambda ev: ev[0])
    # lanes grouped by kind (breaches, retraining, decisions, aliases), then by name
    rank = {kind: i for i, kind in enumerate(EVENT_STYLE)}
    ranked = sorted({(rank.get(kind, len(rank)), label) for _, label, kind in events})
    lanes = [label for _, label in ranked]
    fig, (ax,) = _figure(min(8.0, 1.4 + 0.35 * len(lanes)))
    for kind in dict.fromkeys(kind for _, _, kind in events):
        marker, color = EVENT_STYLE.get(kind, ("o", "tab:gray"))
        x = [at for at, _, k in events if k == kind]
        y = [lanes.index(label) for _, label, k in events if k == kind]
        ax.scatter(x, y, marker=marker, color=color, s=60, zorder=3, label=kind)
    ax.set_yticks(range(len(lanes)), labels=lanes, fontsize=8)
    ax.set_ylim(len(lanes) - 0.3, -0.7)  # first lane on top
    if span is not None:
        ax.set_xlim(min(span[0], events[0][0]), max(span[1], events[-1][0]))
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _dates(ax)
    return to_data_uri(fig), len(aliases) - len(inside)
