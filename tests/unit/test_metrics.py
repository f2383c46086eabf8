"""Energy metrics agree with scikit-learn and handle the cases energy data brings (NaN, night zeros)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

from maestrale.stats.metrics import bias, energy_metrics, mae, mape, rmse, skill_score


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    t = rng.uniform(1, 100, 500)
    return t, t + rng.normal(0, 5, 500)


def test_against_scikit_learn(pair):
    t, p = pair
    assert mae(t, p) == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
    assert rmse(t, p) == pytest.approx(np.sqrt(mean_squared_error(t, p)), rel=1e-12)
    assert mape(t, p, min_abs_actual=0) == pytest.approx(mean_absolute_percentage_error(t, p), rel=1e-12)
    assert bias(t, p) == pytest.approx(np.mean(p - t), rel=1e-12)


def test_normalised_by_capacity_and_skill(pair):
    t, p = pair
    m = energy_metrics(t, p, capacity=200.0, y_reference=np.roll(t, 1))
    assert m["nmae"] == pytest.approx(mae(t, p) / 200)
    assert m["nrmse"] == pytest.approx(rmse(t, p) / 200)
    assert m["skill"] == pytest.approx(1 - rmse(t, p) / rmse(t, np.roll(t, 1)))
    assert m["n"] == 500
    assert skill_score(t, t, np.roll(t, 1)) == 1.0


def test_nan_pairs_are_skipped_and_night_zeros_guard_mape():
    t = np.array([0.0, 0.0, 10.0, 20.0, np.nan])
    p = np.array([0.5, 0.0, 12.0, 18.0, 3.0])
    assert mae(t, p) == pytest.approx((0.5 + 0 + 2 + 2) / 4)
    assert mape(t, p) == pytest.approx((0.2 + 0.1) / 2)
    assert np.isnan(mape([0, 0, 0, 5], [1, 1, 1, 5]))  # mostly night: MAPE is meaningless


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="aligned"):
        mae([1, 2], [1])
    with pytest.raises(ValueError, match="capacity must be positive"):
        energy_metrics([1], [1], capacity=0)
