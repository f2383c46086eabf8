"""Windowed performance of a model in production: energy metrics on predictions joined to late actuals.

>>> report = performance(store, "pv-nrel-50", as_of, "7D", capacity=3.4,
...                      training={"nmae": 0.031})  # doctest: +SKIP
>>> report.overall["nmae"], report.overall["n"], report.ratios["nmae"]  # doctest: +SKIP
(0.042, 168.0, 1.35)

Every figure carries the number of pairs behind it (`n`). nMAE and nRMSE divide by the installed
capacity; MAPE is left out where actuals sit near zero (PV at night); skill is against persistence
(the actual one `lag` earlier, 24 h by default), computed on the pairs where persistence exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from maestrale.stats.metrics import energy_metrics
from maestrale.vocabulary import parse_window

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.monitoring.store import MonitorStore

#: Lead-time buckets for per-horizon figures: (upper bound in hours, label).
HORIZON_BUCKETS: tuple[tuple[float, str], ...] = (
    (6, "0-6h"),
    (24, "6-24h"),
    (48, "24-48h"),
    (168, "2-7d"),
    (float("inf"), ">7d"),
)
#: Metrics compared with the version's training (holdout) metrics as a ratio production / training.
RATIO_METRICS = ("mae", "rmse", "nmae", "nrmse")


def window_label(window: str | timedelta) -> str:
    """A timedelta back to its shortest label: 7 days → "7D"."""
    if isinstance(window, str):
        return window.strip()
    seconds = int(window.total_seconds())
    for size, unit in ((86400, "D"), (3600, "h"), (60, "min")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def horizon_bucket(hours: np.ndarray) -> np.ndarray:
    """Label of each lead time (hours) from `HORIZON_BUCKETS`."""
    edges = np.array([b for b, _ in HORIZON_BUCKETS])
    labels = np.array([label for _, label in HORIZON_BUCKETS], dtype=object)
    return labels[np.searchsorted(edges, hours, side="left")]


def _clean(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 10) for k, v in metrics.items() if np.isfinite(v)}


def window_metrics(
    actual: np.ndarray,
    prediction: np.ndarray,
    *,
    capacity: float | np.ndarray | None,
    reference: np.ndarray | None,
) -> dict[str, float]:
    """Energy metrics of aligned arrays; `n` pairs, `n_skill` pairs with a persistence value.

    `capacity` is one figure, or one per row (the capacity of each row's entity): nMAE is then the
    mean of |error| / capacity, so a 950 kW plant and a 700 kW one are each judged against their size.

    >>> window_metrics(np.array([0.0, 0.0]), np.array([95.0, 70.0]), capacity=np.array([950.0, 700.0]),
    ...                reference=None)["nmae"]
    0.1
    """
    if isinstance(capacity, np.ndarray):
        m = energy_metrics(actual, prediction, capacity=None)
        m.update(_normalised(actual, prediction, capacity))
    else:
        m = energy_metrics(actual, prediction, capacity=capacity)
        if capacity:
            m["nbias"] = m["bias"] / capacity
    both = np.isfinite(actual) & np.isfinite(prediction)
    forecast_energy = float(prediction[both].sum())
    if forecast_energy > 0:
        # Share of the forecast energy that did not come (Σ(p - a) / Σp): 0.2 after a 20% capacity
        # loss whatever the weather or season, where bias/capacity shrinks on dull winter days.
        m["rbias"] = float((prediction[both] - actual[both]).sum()) / forecast_energy
    if reference is not None:
        ok = np.isfinite(reference) & np.isfinite(actual) & np.isfinite(prediction)
        ref_rmse = float(np.sqrt(np.mean((reference[ok] - actual[ok]) ** 2))) if ok.any() else float("nan")
        mod_rmse = float(np.sqrt(np.mean((prediction[ok] - actual[ok]) ** 2))) if ok.any() else float("nan")
        m["skill"] = 1.0 - mod_rmse / ref_rmse if ok.any() and ref_rmse > 0 else float("nan")
        m["n_skill"] = float(ok.sum())
    return _clean(m)


def _normalised(actual: np.ndarray, prediction: np.ndarray, capacity: np.ndarray) -> dict[str, float]:
    """nMAE, nRMSE, nbias with a capacity per row; none if a row's entity has no capacity."""
    if not np.all(np.isfinite(capacity) & (capacity > 0)):
        return {}  # as without a capacity: a figure over part of the plants would pass for the whole
    unit = energy_metrics(actual / capacity, prediction / capacity, capacity=1.0)
    return {"nmae": unit["mae"], "nrmse": unit["rmse"], "nbias": unit["bias"]}


def row_capacities(
    entities: np.ndarray, capacity: float | None, entity_capacity: Mapping[str, float]
) -> np.ndarray:
    """The capacity of each row's entity: from `entity_capacity`, else `capacity`, else NaN.

    >>> row_capacities(np.array(["foggia", "torino", "bari"]), 500.0, {"foggia": 950, "torino": 700})
    array([950., 700., 500.])
    """
    default = float(capacity) if capacity else np.nan
    return np.array([float(entity_capacity.get(str(e), default)) for e in entities], dtype="float64")


def stored_capacities(raw: Any) -> dict[str, float]:
    """The entity capacities a monitor stored (`monitor_state.entity_capacity`), checked as it is read.

    Entries that are not a name and a finite positive number are left out (those entities then use
    the spec's capacity): the column is only ever written from a validated policy, but a reader of a
    shared database trusts nothing.

    >>> stored_capacities({"foggia": 950, "torino": -1, "bari": "x"})
    {'foggia': 950.0}
    """
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(e): float(c)
        for e, c in raw.items()
        if isinstance(c, int | float) and not isinstance(c, bool) and np.isfinite(c) and c > 0
    }


def capacities_to_keep(
    stored: Mapping[str, float], reports: Iterable[PerformanceReport], entity_capacity: Mapping[str, float]
) -> dict[str, float]:
    """The entity capacities a model's state keeps after an evaluation: those the policy gives to the
    entities seen now or stored before (a policy that dropped an entity drops it here too).

    >>> capacities_to_keep({"bari": 500.0}, [], {"bari": 550, "lecce": 300})
    {'bari': 550.0}
    """
    seen = {e for r in reports for e in r.entity_capacity} | set(stored)
    return {e: float(entity_capacity[e]) for e in sorted(seen) if e in entity_capacity}


@dataclass
class PerformanceReport:
    """Production performance of one model over one window, overall and split by entity and horizon."""

    model: str
    window: str
    start: datetime
    end: datetime
    versions: list[int]
    overall: dict[str, float]
    by_entity: dict[str, dict[str, float]] = field(default_factory=dict)
    by_horizon: dict[str, dict[str, float]] = field(default_factory=dict)
    training: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    # the `entity_capacity` entries of the window's entities (what the monitor stores for the REST API)
    entity_capacity: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of prediction/actual pairs behind the overall figures."""
        return int(self.overall.get("n", 0))

    def as_dict(self) -> dict[str, Any]:
        """JSON form (as stored in the evaluation series and returned by the REST API)."""
        return {
            "model": self.model,
            "window": self.window,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "versions": self.versions,
            "overall": self.overall,
            "by_entity": self.by_entity,
            "by_horizon": self.by_horizon,
            "training": self.training,
            "ratios": self.ratios,
        }


def persistence_reference(store: MonitorStore, scored: pd.DataFrame, lag: timedelta) -> np.ndarray:
    """For each scored row, the actual of the same entity `lag` before its target time (NaN if none)."""
    import pandas as pd

    if scored.empty:
        return np.empty(0)
    start = scored["target_time"].min().to_pydatetime() - lag
    end = scored["target_time"].max().to_pydatetime() - lag + timedelta(microseconds=1)
    past = store.actual_series(scored["entity"].unique().tolist(), start, end)
    if past.empty:
        return np.full(len(scored), np.nan)
    past["target_time"] = past["target_time"] + pd.Timedelta(lag)
    keyed = past.set_index(["entity", "target_time"])["value"]
    index = pd.MultiIndex.from_arrays([scored["entity"], scored["target_time"]])
    return keyed.reindex(index).to_numpy(dtype="float64")


def score_frame(
    scored: pd.DataFrame,
    *,
    capacity: float | None,
    reference: np.ndarray | None,
    prediction_column: str = "prediction",
    entity_capacity: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(overall, by entity, by horizon bucket) metrics of a joined frame.

    With `entity_capacity` (entity -> capacity) each row is normalised by its entity's capacity, and
    `capacity` is the one of entities the mapping leaves out.
    """
    actual = scored["actual"].to_numpy(dtype="float64")
    pred = scored[prediction_column].to_numpy(dtype="float64")
    entities = scored["entity"].to_numpy()
    rows: float | np.ndarray | None = capacity
    if entity_capacity:
        rows = row_capacities(entities, capacity, entity_capacity)
    overall = window_metrics(actual, pred, capacity=rows, reference=reference)
    by_entity: dict[str, dict[str, float]] = {}
    by_horizon: dict[str, dict[str, float]] = {}
    if len(np.unique(entities)) > 1:
        for ent in np.unique(entities):
            sel = entities == ent
            ref = None if reference is None else reference[sel]
            own = rows[sel] if isinstance(rows, np.ndarray) else rows
            by_entity[str(ent)] = window_metrics(actual[sel], pred[sel], capacity=own, reference=ref)
    buckets = horizon_bucket(scored["horizon_s"].to_numpy(dtype="float64") / 3600.0)
    for label in dict.fromkeys(buckets):
        sel = buckets == label
        ref = None if reference is None else reference[sel]
        own = rows[sel] if isinstance(rows, np.ndarray) else rows
        by_horizon[str(label)] = window_metrics(actual[sel], pred[sel], capacity=own, reference=ref)
    return overall, by_entity, by_horizon


def performance(
    store: MonitorStore,
    model: str,
    as_of: datetime,
    window: str | timedelta,
    *,
    version: int | None = None,
    capacity: float | None = None,
    training: dict[str, float] | None = None,
    persistence_lag: timedelta | None = timedelta(hours=24),
    entity_capacity: Mapping[str, float] | None = None,
) -> PerformanceReport:
    """Metrics of `model` (one `version`, or every version served) over target times (as_of - window, as_of].

    `training` holds the version's registered holdout metrics (`nmae`, `rmse`, …); each production
    figure is then also given as a ratio to it (`ratios["nmae"] = 1.4`: 40% worse than at training).
    `entity_capacity` gives a model serving several plants the capacity of each (entity -> kW); the
    ones it leaves out use `capacity`.
    """
    span = parse_window(window)
    end = as_of + timedelta(microseconds=1)  # the window includes as_of itself
    start = as_of - span + timedelta(microseconds=1)
    scored = store.scored(model, start, end, version=version)
    reference = persistence_reference(store, scored, persistence_lag) if persistence_lag else None
    overall, by_entity, by_horizon = score_frame(
        scored, capacity=capacity, reference=reference, entity_capacity=entity_capacity
    )
    seen = scored["entity"].unique() if entity_capacity else ()
    applied = {str(e): float(entity_capacity[e]) for e in seen if entity_capacity and e in entity_capacity}
    training = {k: float(v) for k, v in (training or {}).items() if isinstance(v, int | float)}
    ratios = {
        k: round(overall[k] / training[k], 6)
        for k in RATIO_METRICS
        if k in overall and training.get(k) and np.isfinite(training[k])
    }
    return PerformanceReport(
        model=model,
        window=window_label(window),
        start=start,
        end=as_of,
        versions=sorted(int(v) for v in scored["version"].unique()),
        overall=overall,
        by_entity=by_entity,
        by_horizon=by_horizon,
        training={k: v for k, v in training.items() if k in RATIO_METRICS or k in ("bias", "skill", "mape")},
        ratios=ratios,
        entity_capacity=applied,
    )
