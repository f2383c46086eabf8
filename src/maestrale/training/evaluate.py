"""Fit and evaluate one spec on prepared data: backtest folds, the holdout fit, baselines, metrics.

>>> ev = fit_and_evaluate(spec, prepare(spec, load_data(spec.data)))  # doctest: +SKIP
>>> ev.metrics["nmae"], ev.backtest_mean["nmae"]  # doctest: +SKIP
(0.041, 0.047)

Shared by `train` (which then registers `ev.model`) and `reproduce` (which only compares), so both
compute every number the same way. By default the model returned is the one fitted on the holdout's
training rows: the holdout metrics recorded with it are honest out-of-sample figures for that very
model. With `split.refit: true` a fresh estimator is then fitted on every row of the window and
returned instead (`ev.holdout_model` keeps the evaluated one): the metrics stay the holdout model's.

With `sample_weight: {half_life: 7D}` every fit (each fold, the holdout fit, the refit) weighs its
rows by recency, relative to the newest row of that fit (`recency_weights`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from maestrale.errors import MaestraleError
from maestrale.stats.metrics import energy_metrics
from maestrale.training import baselines
from maestrale.training.estimators import (
    build_estimator,
    estimator_name,
    resolve_estimator,
    sample_weight_key,
)
from maestrale.training.spec import TrainingSpec
from maestrale.training.splits import Split, backtest_folds, holdout_split
from maestrale.training.validate import Prepared, moment

#: progress(stage, done, total): e.g. ("fit fold 2/3", 3, 6); called from the training thread.
Progress = Callable[[str, int, int], None]


class TrainingTimeout(MaestraleError):
    """The spec's `time_limit_s` ran out; checked between steps, so nothing is registered."""

    status_code = 408
    code = "timeout"


class FoldResult(BaseModel):
    """One backtest fold: its periods, sizes and metrics."""

    fold: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    n_train: int
    n_test: int
    metrics: dict[str, float]


@dataclass
class Deadline:
    """Cooperative time limit: `check()` between steps raises `TrainingTimeout` once it has passed."""

    limit_s: float | None
    started: float = field(default_factory=time.perf_counter)

    def check(self, done: str) -> None:
        elapsed = time.perf_counter() - self.started
        if self.limit_s is not None and elapsed > self.limit_s:
            raise TrainingTimeout(
                f"time_limit_s={self.limit_s:g} exceeded after {done} ({elapsed:.1f} s): raise time_limit_s, "
                "shorten train_window, use fewer backtest folds or a cheaper estimator"
            )


@dataclass
class Evaluation:
    """Everything `train` registers and `reproduce` compares.

    `model` is the one to register: `holdout_model` (fitted on the rows before the holdout, which
    every metric here describes), or with `split.refit` a refit on all rows. `fit_rows` are the rows
    of the prepared data `model` was fitted on.
    """

    model: Any
    holdout_model: Any
    fit_rows: slice
    estimator_class: str
    params: dict[str, Any]
    split: Split
    metrics: dict[str, float]
    folds: list[FoldResult]
    backtest_mean: dict[str, float]
    baselines: dict[str, dict[str, float]]
    test_predictions: np.ndarray
    timings: dict[str, float]

    def flat_metrics(self) -> dict[str, float]:
        """Metrics as registered: `nmae`, `backtest_nmae`, `backtest_fold1_nmae`, `persistence_nmae`, …"""
        out = dict(self.metrics)
        out.update({f"backtest_{k}": v for k, v in self.backtest_mean.items()})
        for f in self.folds:
            out.update({f"backtest_fold{f.fold}_{k}": v for k, v in f.metrics.items()})
        for name, metrics in self.baselines.items():
            out.update({f"{name}_{k}": v for k, v in metrics.items()})
        out["n_train"], out["n_test"] = float(self.split.train.size), float(self.split.test.size)
        return {k: _round(v) for k, v in out.items()}


def recency_weights(times: pd.DatetimeIndex, half_life: str) -> np.ndarray:
    """Exponential recency weights: `0.5 ** ((times[-1] - t) / half_life)`, 1 for the newest row.

    >>> times = pd.date_range("2011-06-01", periods=3, freq="7D")
    >>> recency_weights(times, "7D").tolist()
    [0.25, 0.5, 1.0]
    """
    # pandas deprecates lowercase "d"/"w", which the spec's Duration accepts: normalise, don't warn
    text = half_life.strip()
    text = text[:-1] + text[-1].upper() if text[-1:] in ("d", "w") else text
    age = (times[-1] - times) / pd.Timedelta(text)
    return np.power(0.5, np.asarray(age, dtype="float64"))


def _rows(positions: np.ndarray) -> slice:
    # every split is a contiguous run of rows: slicing avoids copying the frame for each fit
    return slice(int(positions[0]), int(positions[-1]) + 1)


def _round(value: float) -> float:
    # 12 significant digits: every metadata store keeps that exactly (SQLite's JSON functions print
    # 15), so recorded and reproduced metrics compare equal when the model is the same
    return float(f"{value:.12g}")


def score(
    spec: TrainingSpec, y_true: Any, y_pred: Any, reference: Any | None, names: list[str]
) -> dict[str, float]:
    """The spec's metrics (those defined here: MAPE is absent where actuals sit near zero)."""
    m = energy_metrics(y_true, y_pred, capacity=spec.capacity, y_reference=reference)
    return {k: _round(m[k]) for k in names if k in m and np.isfinite(m[k])}


def fit_and_evaluate(
    spec: TrainingSpec,
    prepared: Prepared,
    *,
    deadline: Deadline | None = None,
    progress: Progress | None = None,
    steps: tuple[int, int] = (0, 0),
) -> Evaluation:
    """Backtest on the rows before the holdout, then fit on them and score the holdout and baselines;
    with `split.refit`, finally fit a fresh estimator on all rows (the model to register).

    `steps` is (steps already done, total steps) for `progress`, so a caller's bar keeps moving.
    Raises `InvalidInput` before any fitting if `sample_weight` is set and the estimator's fit
    cannot take weights.

    >>> ev = fit_and_evaluate(load_spec(text), prepared)  # doctest: +SKIP
    >>> ev.metrics["nmae"], ev.fit_rows  # with split.refit: all rows  # doctest: +SKIP
    (0.041, slice(0, 1392, None))
    """
    deadline = deadline or Deadline(None)
    X, y, times = prepared.X, prepared.y, prepared.times
    timings: dict[str, float] = {}
    names = spec.metric_names()
    holdout = spec.split.holdout
    split = holdout_split(
        times,
        test_start=None if holdout.test_start is None else moment(holdout.test_start, times.tz),
        test_fraction=holdout.test_fraction,
    )
    lag = spec.baselines.persistence.lag if spec.baselines.persistence else None
    # persistence for every row once: folds and the holdout take their slices (skill needs it)
    reference = baselines.persistence(prepared.target_all, times, lag) if lag else None
    resolve_estimator(spec.estimator)  # fail on a missing package before any fitting starts
    half_life = spec.sample_weight.half_life if spec.sample_weight is not None else None
    # weights need fit(sample_weight=): ask a throwaway instance now, not after minutes of backtest
    weight_key = (
        None
        if half_life is None
        else sample_weight_key(build_estimator(spec.estimator, spec.params)[0], spec.estimator)
    )
    done, total = steps

    def fit(rows: slice) -> tuple[Any, dict[str, Any]]:
        """A fresh estimator fitted on `rows`, weighted relative to the last of them if configured."""
        est, params = build_estimator(spec.estimator, spec.params)
        kwargs: dict[str, Any] = {}
        if weight_key is not None and half_life is not None:
            kwargs[weight_key] = recency_weights(times[rows], half_life)
        est.fit(X.iloc[rows], y.iloc[rows], **kwargs)
        return est, params

    folds: list[FoldResult] = []
    if spec.split.backtest is not None:
        t0 = time.perf_counter()
        bt = spec.split.backtest
        train_times = times[_rows(split.train)]
        for i, fold in enumerate(backtest_folds(train_times, bt.folds, bt.test_size), start=1):
            if progress:
                progress(f"backtest fold {i}/{bt.folds}", done, total)
            tr, te = _rows(fold.train), _rows(fold.test)
            est, _ = fit(tr)
            pred = np.asarray(est.predict(X.iloc[te]), dtype="float64")
            ref = None if reference is None else reference[te]
            folds.append(
                FoldResult(
                    fold=i,
                    train_start=times[tr.start],
                    train_end=times[tr.stop - 1],
                    test_start=times[te.start],
                    test_end=times[te.stop - 1],
                    n_train=tr.stop - tr.start,
                    n_test=te.stop - te.start,
                    metrics=score(spec, y.iloc[te], pred, ref, names),
                )
            )
            done += 1
            deadline.check(f"backtest fold {i}")
        timings["backtest"] = time.perf_counter() - t0

    if progress:
        progress("fit", done, total)
    tr, te = _rows(split.train), _rows(split.test)
    y_train = y.iloc[tr]
    t0 = time.perf_counter()
    model, params = fit(tr)
    timings["fit"] = time.perf_counter() - t0
    deadline.check("the holdout fit")

    t0 = time.perf_counter()
    y_test, test_times = y.iloc[te], times[te]
    pred = np.asarray(model.predict(X.iloc[te]), dtype="float64")
    timings["predict"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = None if reference is None else reference[te]
    metrics = score(spec, y_test, pred, ref, names)
    base: dict[str, dict[str, float]] = {}
    if ref is not None:
        base["persistence"] = score(spec, y_test, ref, None, [n for n in names if n != "skill"])
    if spec.baselines.climatology is not None:
        clim = baselines.climatology(y_train, test_times, spec.baselines.climatology.by)
        base["climatology"] = score(spec, y_test, clim, ref, names)
    mean = {}
    if folds:
        keys = set.intersection(*(set(f.metrics) for f in folds))
        mean = {k: _round(float(np.mean([f.metrics[k] for f in folds]))) for k in sorted(keys)}
    timings["evaluate"] = time.perf_counter() - t0

    registered, fit_rows = model, tr
    if spec.split.refit:
        # after scoring, so the metrics above stay the holdout model's honest out-of-sample figures
        if progress:
            progress("refit on the whole window", done + 1, total)
        fit_rows = slice(0, len(times))
        t0 = time.perf_counter()
        registered, _ = fit(fit_rows)
        timings["refit"] = time.perf_counter() - t0
        deadline.check("the refit on the whole window")
    return Evaluation(
        model=registered,
        holdout_model=model,
        fit_rows=fit_rows,
        estimator_class=estimator_name(spec.estimator),
        params=params,
        split=split,
        metrics=metrics,
        folds=folds,
        backtest_mean=mean,
        baselines=base,
        test_predictions=pred,
        timings=timings,
    )


def total_steps(spec: TrainingSpec) -> int:
    """Progress steps of one training: load, each backtest fold, the fit, the refit if any, registration."""
    return 3 + (spec.split.backtest.folds if spec.split.backtest else 0) + int(spec.split.refit)
