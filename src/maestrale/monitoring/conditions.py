"""A policy's conditions judged on one evaluation: window drift, and the breach of each condition.

>>> breach = check_condition(condition, performance_by_window, drift_by_window, version)  # doctest: +SKIP
>>> breach.description  # doctest: +SKIP
'rbias over 3D |·| > 0.12 (n ≥ 48): 0.1376'
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from maestrale.monitoring.performance import PerformanceReport
from maestrale.monitoring.policy import Condition
from maestrale.vocabulary import parse_window

if TYPE_CHECKING:
    from maestrale.monitoring.store import MonitorStore
    from maestrale.registry.types import ModelVersion


@dataclass
class Breach:
    """A condition that fired at one evaluation, with the numbers behind it."""

    condition: str
    metric: str
    value: float
    threshold: float
    window: str
    n: int
    description: str
    actions: dict[str, Any] = field(default_factory=dict)


def window_drift(store: MonitorStore, mv: ModelVersion, as_of: datetime, c: Condition) -> dict[str, Any]:
    """Drift of the logged inputs (and forecasts) of `mv` over `c.window` ending at `as_of`.

    Against the training rows of the same month when `c.reference` is season; a month the version
    was not trained on gives the status "no reference for <month>" and no statistics (so no breach).
    With `reference: training`, or a profile without monthly bins,
    against the whole training profile. NaN statistics become None (JSON-safe).
    """
    from maestrale.stats.drift import DriftThresholds, drift_report
    from maestrale.stats.profile import month_reference

    profile = mv.profile
    span = parse_window(c.window)
    start = as_of - span + timedelta(microseconds=1)
    logged = store.logged(mv.name, start, as_of + timedelta(microseconds=1), version=mv.version)
    if profile is None or logged.empty:
        return {"n": len(logged), "note": "no profile on the version" if profile is None else "no data"}
    reference = "training"
    if c.reference == "season":
        # the month in the middle of the window: a 7-day window is mostly in one month
        month = (as_of - span / 2).month
        seasonal = month_reference(profile, [month])
        if seasonal is None and profile.get("by_month"):
            # The version never saw this month: against other months' weather every input "drifts"
            # (December irradiance vs a spring-summer training window), an alarm on a healthy plant.
            # Say so instead; nothing is judged until a version trained on this month serves.
            name = calendar.month_name[month]
            return {
                "n": len(logged), "status": f"no reference for {name}",
                "note": f"no reference for {name}: {mv.ref} was trained without {name} data, so drift is "
                "not judged this month (retrain on a window that covers it, or set reference: training)",
            }  # fmt: skip
        if seasonal is not None:
            profile, reference = seasonal, f"month {month}"
    names = [n for n in (c.features or profile["columns"]) if n in profile["columns"] and n not in c.exclude]
    # the profile covers the version's inputs (a feature pipeline's raw inputs): an input the callers
    # did not log cannot be judged, and the evaluation says which rather than skipping it silently
    not_logged = [n for n in names if n not in logged.columns]
    names = [n for n in names if n in logged.columns]
    if not names:
        return {"n": len(logged), "note": "no logged feature matches the profile", "not_logged": not_logged}
    with_pred = profile.get("predictions") is not None
    report = drift_report(
        profile, logged[names], columns=names,
        predictions=logged["prediction"].to_numpy() if with_pred else None,
        thresholds=DriftThresholds(psi=None, wasserstein_norm=None),
    )  # fmt: skip
    stats = {
        f.name: {k: getattr(f, k) for k in ("psi", "ks", "ks_pvalue", "wasserstein_norm", "js", "n_cur")}
        for f in [*report.features, *([report.predictions] if report.predictions else [])]
    }
    out = {"n": len(logged), "features": names, "reference": reference, "stats": finite(stats)}
    return {**out, "not_logged": not_logged} if not_logged else out


def check_condition(
    c: Condition,
    perf: dict[str, PerformanceReport],
    drift: dict[str, dict[str, Any]],
    mv: ModelVersion,
) -> Breach | None:
    if c.metric:
        rep = perf[c.window]
        if rep.n < c.min_samples or c.metric not in rep.overall:
            return None
        value = rep.overall[c.metric]
        training = mv.metrics.get(c.metric)
        fired = c.fires(value, training)
        if not fired:
            return None
        threshold = c.threshold * training if c.ratio_to_training is not None and training else c.threshold
        desc = c.describe() + f": {value:.4g}" + (f" vs training {training:.4g}" if training else "")
        return Breach(c.name, c.metric, float(value), float(threshold), c.window, rep.n, desc)
    d = drift[c.window]
    if d.get("n", 0) < c.min_samples or "stats" not in d:
        return None
    stat = c.drift or "psi"
    values = {
        n: v for n in d["features"] if (v := (d["stats"].get(n) or {}).get(stat)) is not None
    }  # a statistic that was NaN (no finite value in the window) is None here and not judged
    over = sorted(n for n, v in values.items() if v > float(c.above or 0))
    share = len(over) / len(values) if values else 0.0
    if share < c.min_share:
        return None
    worst = max(over, key=lambda n: values[n])
    desc = c.describe() + f": {share:.0%} of features ({', '.join(over)}); worst {worst} {values[worst]:.3g}"
    return Breach(
        c.name, f"{stat}:{worst}", float(values[worst]), float(c.above or 0), c.window, d["n"], desc
    )


def finite(obj: Any) -> Any:
    """JSON-safe copy: NaN and inf become None (PostgreSQL's JSON refuses them)."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
