"""Recency weighting (`sample_weight: {half_life}`) and `split.refit` on real NREL data and a real registry.

The story behind them: a PV plant loses 20% of its capacity; the monitor retrains, and the new model
must have seen (and mostly believe) the newest data, or it keeps over-forecasting.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error

from maestrale.errors import InvalidInput
from maestrale.training import load_spec, reproduce, train
from maestrale.training.evaluate import fit_and_evaluate
from maestrale.training.spec import TrainWindow
from maestrale.training.trainer import load_for
from maestrale.training.validate import Prepared, prepare
from tests.unit.custom_estimators import CountingMeanRegressor

# Small on purpose (2 cores, other work running): two months of hourly data, a one-week holdout.
SPEC = """\
name: pv-weighted
data: {dataset: nrel_system50, freq: 1h}
target: power_kw
feature_set: pv_features
estimator: ridge
train_window: {start: 2011-05-01, end: 2011-06-30}
split:
  holdout: {test_start: 2011-06-24}
  backtest: {folds: 2, test_size: 7D}
capacity: 3.4
"""
TEST_START = pd.Timestamp("2011-06-24", tz="UTC")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's own MAESTRALE_* settings must not leak into these tests
    for var in (
        "MAESTRALE_HOME",
        "MAESTRALE_DATABASE_URL",
        "MAESTRALE_STORAGE_URL",
        "MAESTRALE_REGISTRY_URL",
    ):
        monkeypatch.delenv(var, raising=False)


def with_refit(text: str = SPEC) -> str:
    """The spec text with `split.refit: true`."""
    return text.replace(
        "  backtest: {folds: 2, test_size: 7D}\n", "  backtest: {folds: 2, test_size: 7D}\n  refit: true\n"
    )


def recency(times: pd.DatetimeIndex, half_life: str) -> np.ndarray:
    """The documented formula, written out independently of the code under test."""
    return 0.5 ** ((times[-1] - times) / pd.Timedelta(half_life)).to_numpy(dtype="float64")


def ridge_fit(prepared: Prepared, rows: np.ndarray, half_life: str | None) -> Ridge:
    """What the trainer should have done for one fit: Ridge(random_state=0) on `rows`, maybe weighted."""
    times = prepared.times[rows]
    weights = None if half_life is None else recency(times, half_life)
    return Ridge(random_state=0).fit(prepared.X.iloc[rows], prepared.y.iloc[rows], sample_weight=weights)


@pytest.fixture(scope="module")
def shifted_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NREL system 50 with the plant losing 20% of its power from 2011-06-24 (the holdout's start)."""
    from maestrale.datasets import nrel_system50

    df = nrel_system50("1h").loc["2011-04-15":"2011-07-31"].copy()
    df.loc[df.index >= TEST_START, "power_kw"] *= 0.8
    path = tmp_path_factory.mktemp("shift") / "pv-shifted.parquet"
    df.to_parquet(path)  # the DatetimeIndex (named `time`) survives the round trip: no time_column needed
    return path


def test_weighting_and_refit_follow_a_level_shift(shifted_parquet: Path, sqlite_registry):
    text = SPEC.replace("{dataset: nrel_system50, freq: 1h}", f"{{uri: {shifted_parquet}}}").replace(
        "estimator: ridge", "estimator: hgb\nparams: {max_iter: 30}"
    )
    plain = train(load_spec(text), sqlite_registry)
    adapted = train(load_spec(with_refit(text) + "sample_weight: {half_life: 3D}\n"), sqlite_registry)

    # the days right after the window: the plant still produces 80%
    after = load_spec(text).model_copy(
        update={"train_window": TrainWindow(start=date(2011, 7, 1), end=date(2011, 7, 10))}
    )
    prepared = prepare(after, load_for(after))
    bias = {
        r.ref: float(np.mean(sqlite_registry.load(r.ref).predict(prepared.X) - prepared.y))
        for r in (plain, adapted)
    }
    mean_power = float(prepared.y.mean())
    # the plain model never saw the shift and over-forecasts by well over 10% of the mean power …
    assert bias[plain.ref] > 0.1 * mean_power
    # … the weighted refit has seen it, believes it most, and is clearly closer
    assert abs(bias[adapted.ref]) < 0.35 * bias[plain.ref]
    # its recorded metrics are the holdout model's, which had not seen the shift either: they say so
    assert adapted.metrics["bias"] > 0.05 and adapted.train_end == adapted.test_end


def test_refit_registers_the_whole_window_model_with_the_holdout_metrics(sqlite_registry):
    spec = load_spec(SPEC)
    refit_spec = load_spec(with_refit())
    assert spec.split.refit is False and refit_spec.split.refit is True
    steps: list[tuple[str, int, int]] = []
    holdout = train(spec, sqlite_registry)
    refit = train(refit_spec, sqlite_registry, progress=lambda *s: steps.append(s))
    mv_holdout, mv_refit = sqlite_registry.get_version(holdout.ref), sqlite_registry.get_version(refit.ref)

    # metrics are the holdout evaluation's, identical whether or not the registered model is refitted
    assert refit.metrics == holdout.metrics and refit.backtest_mean == holdout.backtest_mean
    assert mv_refit.metrics == mv_holdout.metrics

    prepared = prepare(spec, load_for(spec))
    test = prepared.times >= TEST_START
    y = prepared.y[test]
    pred_holdout = sqlite_registry.load(holdout.ref).predict(prepared.X[test])
    pred_refit = sqlite_registry.load(refit.ref).predict(prepared.X[test])
    assert np.max(np.abs(pred_refit - pred_holdout)) > 1e-3  # another model is registered …
    # … the recorded nMAE is the holdout model's, not the refit's (which has seen these rows)
    assert refit.metrics["nmae"] == pytest.approx(mean_absolute_error(y, pred_holdout) / 3.4, rel=1e-9)
    assert mean_absolute_error(y, pred_refit) < mean_absolute_error(y, pred_holdout)
    # and it is exactly Ridge fitted on every row of the window
    everything = np.arange(len(prepared.times))
    expected = ridge_fit(prepared, everything, None).predict(prepared.X[test])
    np.testing.assert_allclose(pred_refit, expected, rtol=1e-10, atol=1e-12)

    # the result and the profile describe the rows the registered model saw
    assert refit.n_train == len(prepared.times) == holdout.n_train + holdout.n_test
    assert refit.train_start == holdout.train_start and refit.train_end == refit.test_end
    assert holdout.train_end < holdout.test_start
    profile = mv_refit.profile or {}
    assert profile["rows"] == refit.n_train and profile["predictions"]["count"] == refit.n_train
    assert (mv_holdout.profile or {})["rows"] == holdout.n_train

    assert mv_refit.params["refit"] == "true" and mv_holdout.params["refit"] == "false"
    assert "sample_weight_half_life" not in mv_refit.params
    assert mv_refit.spec["split"]["refit"] is True
    assert ("refit on the whole window", 4, 6) in steps and steps[-1] == ("done", 6, 6)
    assert reproduce(sqlite_registry, refit.ref).identical


def test_weights_are_relative_to_the_last_row_of_each_fit(sqlite_registry):
    spec = load_spec(with_refit() + "sample_weight: {half_life: 3D}\n")
    result = train(spec, sqlite_registry)
    mv = sqlite_registry.get_version(result.ref)
    assert mv.params["sample_weight_half_life"] == "3D" and mv.params["refit"] == "true"
    assert mv.spec["sample_weight"] == {"half_life": "3D"}

    prepared = prepare(spec, load_for(spec))
    times, X, y = prepared.times, prepared.X, prepared.y
    train_rows = np.flatnonzero(times < TEST_START)
    test_rows = np.flatnonzero(times >= TEST_START)

    # the holdout fit: weights relative to its own last row (2011-06-23 23:00), not the window's end
    holdout_pred = ridge_fit(prepared, train_rows, "3D").predict(X.iloc[test_rows])
    assert result.metrics["mae"] == pytest.approx(
        mean_absolute_error(y.iloc[test_rows], holdout_pred), rel=1e-9
    )
    window_end = recency(times, "3D")[train_rows]  # what a single window-wide weighting would give
    wrong = Ridge(random_state=0).fit(X.iloc[train_rows], y.iloc[train_rows], sample_weight=window_end)
    assert result.metrics["mae"] != pytest.approx(
        mean_absolute_error(y.iloc[test_rows], wrong.predict(X.iloc[test_rows])), rel=1e-6
    )
    unweighted = train(load_spec(SPEC), sqlite_registry)
    assert result.metrics["mae"] != unweighted.metrics["mae"]

    # each backtest fold: weights relative to the last row of that fold's training rows
    for fold in result.backtest:
        fold_train = np.flatnonzero(times <= fold.train_end)
        fold_test = np.flatnonzero((times >= fold.test_start) & (times <= fold.test_end))
        pred = ridge_fit(prepared, fold_train, "3D").predict(X.iloc[fold_test])
        assert fold.metrics["mae"] == pytest.approx(mean_absolute_error(y.iloc[fold_test], pred), rel=1e-9)

    # the registered refit: every row, weights relative to the window's last row
    everything = np.arange(len(times))
    expected = ridge_fit(prepared, everything, "3D").predict(X)
    np.testing.assert_allclose(sqlite_registry.load(result.ref).predict(X), expected, rtol=1e-10, atol=1e-12)

    report = reproduce(sqlite_registry, result.ref)
    assert report.identical and report.max_abs_difference == 0.0


@pytest.mark.parametrize(
    ("estimator", "shown"),
    [
        ("tests.unit.custom_estimators:CountingMeanRegressor", "(CountingMeanRegressor)"),
        ("sklearn.neighbors:KNeighborsRegressor", "(KNeighborsRegressor)"),
    ],
)
def test_an_estimator_without_sample_weight_fails_before_fitting(
    estimator: str, shown: str, sqlite_registry, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(CountingMeanRegressor, "fits", 0)
    # the admin's trust for the test's own estimator module (specs may name no other code)
    monkeypatch.setenv("MAESTRALE_ESTIMATOR_MODULES", "tests.unit.custom_estimators")
    spec = load_spec(
        SPEC.replace("estimator: ridge", f"estimator: {estimator}") + "sample_weight: {half_life: 7D}\n"
    )
    steps: list[tuple[str, int, int]] = []
    with pytest.raises(InvalidInput) as info:
        train(spec, sqlite_registry, progress=lambda *s: steps.append(s))
    message = str(info.value)
    assert f"estimator {estimator!r} {shown} does not accept sample_weight" in message
    assert "remove `sample_weight:` from the spec" in message and "e.g. hgb, ridge, lightgbm" in message
    # refused before the first backtest fold: nothing fitted, nothing registered
    assert CountingMeanRegressor.fits == 0 and [s[0] for s in steps] == ["load data"]
    assert sqlite_registry.list_models().items == []

    # without weighting the same estimator fits (so the counter does count): 2 folds + the holdout fit
    plain = load_spec(SPEC.replace("estimator: ridge", f"estimator: {estimator}"))
    assert fit_and_evaluate(plain, prepare(plain, load_for(plain))).metrics["nmae"] > 0
    if "Counting" in estimator:
        assert CountingMeanRegressor.fits == 3
