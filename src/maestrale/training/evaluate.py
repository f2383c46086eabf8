"""Fit and evaluate one spec on prepared data: backtest folds, the holdout fit, baselines, metrics.

>>> ev = fit_and_evaluate(spec, prepare(spec, load_data(spec.data)))  # doctest: +SKIP
>>> ev.metrics["nmae"], ev.backtest_mean["nmae"]  # doctest: +SKIP
(0.041, 0.047)

Shared by `train` (which then registers `ev.model`) and `reproduce` (which only compares), so both
compute every number the same way. The model returned is the one fitted on the holdout's training
rows: the holdout metrics recorded with it are honest out-of-sample figures for that very model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel

from maestrale.errors import MaestraleError
from maestrale.stats.metrics import energy_metrics
from maestrale.training import baselines
from maestrale.training.estimators import build_estimator, estimator_name, resolve_estimator
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
    """Everything `train` registers and `reproduce` compares."""

    model: Any
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
    """Backtest on the rows before the holdout, then fit on them and score the holdout and baselines.

    `steps` is (steps already done, total steps) for `progress`, so a caller's bar keeps moving.
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
    done, total = steps

    folds: list[FoldResult] = []
    if spec.split.backtest is not None:
        t0 = time.perf_counter()
        bt = spec.split.backtest
        train_times = times[_rows(split.train)]
        for i, fold in enumerate(backtest_folds(train_times, bt.folds, bt.test_size), start=1):
            if progress:
                progress(f"backtest fold {i}/{bt.folds}", done, total)
            tr, te = _rows(fold.train), _rows(fold.test)
            est, _ = build_estimator(spec.estimator, spec.params)
            est.fit(X.iloc[tr], y.iloc[tr])
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
    model, params = build_estimator(spec.estimator, spec.params)
    X_train, y_train = X.iloc[tr], y.iloc[tr]
    t0 = time.perf_counter()
    model.fit(X_train, y_train)
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
        mean = {k: _round(np.mean([f.metrics[k] for f in folds])) for k in sorted(keys)}
    timings["evaluate"] = time.perf_counter() - t0
    return Evaluation(
        model=model,
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
    """Progress steps of one training: load, each backtest fold, the fit, registration."""
    return 3 + (spec.split.backtest.folds if spec.split.backtest else 0)
