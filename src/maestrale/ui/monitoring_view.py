"""Chart specs and the timeline of the monitoring page, from what the monitor store returns.

Pure functions over the rows of `MonitorStore.series`, `.scored`, `.logged`, `.audit_trail` and the
monitor's retraining history: no query here, and every output is bounded (<= `MAX_POINTS` points per
series, <= `MAX_LINES` lines per chart) whatever the history, so a year of hourly data draws as fast
as a week. The per-row work is numpy/pandas; Python loops run over the (bounded) output only.

>>> spec = forecast_chart(store.scored_buckets("pv-nrel-50", start, end, 3600), 3600)  # doctest: +SKIP
>>> len(spec["x"]) <= MAX_POINTS, [s["label"] for s in spec["series"]]  # doctest: +SKIP
(True, ['actual', 'forecast v1', 'forecast v2'])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from maestrale.monitoring.performance import HORIZON_BUCKETS
from maestrale.vocabulary import parse_window

if TYPE_CHECKING:
    import pandas as pd

#: Points per chart series: a year of hourly data (8,760) is averaged into 2-hour buckets.
MAX_POINTS = 5_000
#: Lines per chart (entities of a fleet model beyond this are left out, and the page says so).
MAX_LINES = 10
#: The metrics charted over time: (key in the evaluation's figures, heading, y-axis label).
METRICS = (
    ("nmae", "nMAE", "nMAE (÷ capacity)"),
    ("bias", "Bias", "bias (forecast − actual)"),
    ("skill", "Skill", "skill vs persistence"),
    ("rbias", "rbias", "share of forecast energy missing"),
)
#: Bucket sizes (seconds) tried in order until a series fits in `MAX_POINTS`.
BUCKETS_S = (3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400)


def clean(values: Iterable[Any], digits: int = 6) -> list[float | None]:
    """JSON-safe figures: NaN, inf and missing become None (JSON.parse refuses NaN).

    >>> clean([1.23456789, float("nan"), None])
    [1.234568, None, None]
    """
    out: list[float | None] = []
    for v in values:
        out.append(round(float(v), digits) if isinstance(v, int | float) and math.isfinite(v) else None)
    return out


def epoch(when: datetime) -> int:
    """Epoch seconds, the x of every time chart."""
    return int(when.timestamp())


def thin(n: int, limit: int = MAX_POINTS) -> slice:
    """Every k-th item so that at most `limit` remain (the newest kept).

    >>> thin(10, 4), thin(3, 4)
    (slice(0, None, 3), slice(None, None, 1))
    """
    if n <= limit:
        return slice(None, None, 1)
    step = math.ceil(n / limit)
    return slice((n - 1) % step, None, step)


def window_order(windows: Iterable[str]) -> list[str]:
    """Evaluation windows, shortest first ("3D" before "7D")."""
    return sorted(set(windows), key=lambda w: (parse_window(w), w))


def split_keys(rows: Sequence[dict[str, Any]], by: str) -> tuple[list[str], int]:
    """The entities or horizon buckets present in `rows` (at most `MAX_LINES`) and how many in all."""
    field = "by_entity" if by == "entity" else "by_horizon"
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys((row["values"] or {}).get(field) or {}))
    if by == "horizon":
        order = [label for _, label in HORIZON_BUCKETS]
        keys = [k for k in order if k in seen] + sorted(k for k in seen if k not in order)
    else:
        keys = sorted(seen)
    return keys[:MAX_LINES], len(keys)


def performance_charts(
    rows: Sequence[dict[str, Any]], *, by: str = "overall", window: str | None = None
) -> list[dict[str, Any]]:
    """One line chart per metric (cursors synced): a line per window, or per entity/horizon of `window`.

    `rows` are `MonitorStore.series(kind="performance")` rows, oldest first.
    """
    if by == "overall":
        lines = [(w, w, "overall") for w in window_order(r["window"] for r in rows)]
        chosen = list(rows)
    else:
        chosen = [r for r in rows if r["window"] == window]
        keys, _ = split_keys(chosen, by)
        lines = [(k, f"{k} ({window})", "by_entity" if by == "entity" else "by_horizon") for k in keys]
    times = sorted({epoch(r["as_of"]) for r in chosen})
    keep = thin(len(times))
    times = times[keep]
    index = {t: i for i, t in enumerate(times)}
    charts = []
    for key, heading, y_label in METRICS:
        columns: dict[str, list[Any]] = {label: [None] * len(times) for _, label, _ in lines}
        for row in chosen:
            i = index.get(epoch(row["as_of"]))
            if i is None:
                continue
            values = row["values"] or {}
            for line, label, field in lines:
                if field == "overall":
                    if row["window"] == line:
                        columns[label][i] = (values.get("overall") or {}).get(key)
                else:
                    columns[label][i] = ((values.get(field) or {}).get(line) or {}).get(key)
        charts.append({
            "id": f"perf-{key}", "title": heading, "type": "line", "x": times, "y_label": y_label,
            "sync": "performance", "height": 200,
            "series": [{"label": label, "values": clean(v)} for label, v in columns.items()],
        })  # fmt: skip
    return charts


def bucket_seconds(first: int, last: int, limit: int = MAX_POINTS) -> int:
    """The smallest bucket of `BUCKETS_S` giving at most `limit` buckets between two epoch seconds.

    >>> bucket_seconds(0, 365 * 86400)  # a year: 2-hour means
    7200
    """
    span = max(0, last - first)
    for size in BUCKETS_S:
        if span // size + 1 <= limit:
            return size
    return max(BUCKETS_S[-1], math.ceil((span + 1) / limit))


def forecast_chart(buckets: pd.DataFrame | None, bucket_s: int) -> dict[str, Any]:
    """Forecast (a line per version that forecast) against actual, from `MonitorStore.scored_buckets`.

    The database averaged the pairs per `bucket_s` (`bucket_seconds`: an hour, or longer when the
    range holds more than `MAX_POINTS` hours); the page prints which.
    """
    spec: dict[str, Any] = {
        "type": "line", "x": [], "series": [], "y_label": "power", "sync": "forecast", "bucket_s": bucket_s,
    }  # fmt: skip
    if buckets is None or buckets.empty:
        return spec
    versions = sorted(int(v) for v in buckets["version"].unique())[-(MAX_LINES - 1) :]
    # a bucket's actual: the mean over all its pairs, whichever version forecast them
    weighted = buckets.assign(total=buckets["actual"] * buckets["n"]).groupby("t")[["total", "n"]].sum()
    actual = weighted["total"] / weighted["n"]
    forecast = (
        buckets[buckets["version"].isin(versions)]
        .pivot(index="t", columns="version", values="prediction")
        .reindex(actual.index)
    )
    series = [{"label": "actual", "values": clean(actual.to_numpy()), "width": 2, "color": "#1b1f24"}]
    series += [{"label": f"forecast v{v}", "values": clean(forecast[v].to_numpy())} for v in versions]
    return {**spec, "x": [int(x) for x in actual.index], "series": series}


def drift_windows(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The windows drift was evaluated over, shortest first."""
    return window_order(r["window"] for r in rows)


def drift_heatmap(rows: Sequence[dict[str, Any]], window: str | None, stat: str = "psi") -> dict[str, Any]:
    """Features × evaluation times of one drift window: the per-feature statistic (PSI by default)."""
    chosen = [r for r in rows if r["window"] == window and (r["values"] or {}).get("stats")]
    chosen = chosen[thin(len(chosen))]
    features: dict[str, None] = {}
    for r in chosen:
        features.update(dict.fromkeys(r["values"]["stats"]))
    names = sorted(features)
    values = [clean(((r["values"]["stats"].get(f) or {}).get(stat) for r in chosen), 4) for f in names]
    return {
        "type": "heatmap", "rows": names, "x": [epoch(r["as_of"]) for r in chosen], "values": values,
        "label": stat.upper() if stat == "psi" else stat, "window": window,
    }  # fmt: skip


def histogram_chart(reference: dict[str, Any], current: np.ndarray) -> dict[str, Any]:
    """Reference (the version's training profile) against current values, as shares of each bin.

    `reference` is one of `maestrale.stats.profile.histograms(profile)` (equal-width bins); current
    values outside its range are counted in the outer bins and reported in `outside` (they are what
    drift looks like).
    """
    edges = np.asarray(reference.get("edges") or [], dtype="float64")
    ref = np.asarray(reference.get("counts") or [], dtype="float64")
    spec: dict[str, Any] = {"type": "bars", "x_label": "", "y_label": "share", "height": 220}
    if edges.size < 2 or ref.size != edges.size - 1:
        return {**spec, "x": [], "series": [], "outside": 0, "n": 0}
    values = current[np.isfinite(current)]
    outside = int(((values < edges[0]) | (values > edges[-1])).sum())
    idx = np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, ref.size - 1)
    counts = np.bincount(idx, minlength=ref.size).astype("float64")
    ref_share = ref / ref.sum() if ref.sum() > 0 else ref
    cur_share = counts / counts.sum() if counts.sum() > 0 else counts
    return {
        **spec, "x": clean(edges[:-1]), "outside": outside, "n": int(values.size),
        "series": [{"label": "reference (training)", "values": clean(ref_share, 5)},
                   {"label": "current", "values": clean(cur_share, 5)}],
    }  # fmt: skip


def timeline(
    breaches: Sequence[dict[str, Any]],
    decisions: Sequence[dict[str, Any]],
    retrainings: Sequence[Any],
    since: datetime | None,
    limit: int = 300,
) -> list[dict[str, Any]]:
    """Breaches, retrainings and decisions in data time, newest first, each with its numbers."""
    items: list[dict[str, Any]] = []
    for b in breaches:
        items.append({"kind": "breach", "at": b["as_of"], "id": b["id"], **b})
    for d in decisions:
        items.append({"kind": "decision", "at": d["as_of"], **d})
    for r in retrainings:
        items.append({
            "kind": "retraining", "at": r.as_of, "request_id": r.request_id, "status": r.status,
            "version": r.version, "parent_version": r.parent_version, "reason": r.reason, "error": r.error,
            "id": 0,
        })  # fmt: skip
    if since is not None:
        items = [i for i in items if i["at"] >= since]
    order = {"decision": 2, "retraining": 1, "breach": 0}  # same data time: the breach caused the rest
    items.sort(key=lambda i: (i["at"], order[i["kind"]], i.get("id") or 0), reverse=True)
    return items[:limit]
