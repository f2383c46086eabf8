"""Energy forecasting metrics, vectorised, NaN-aware (pairs with a missing value are skipped).

>>> import numpy as np
>>> energy_metrics(np.array([1.0, 2.0]), np.array([1.5, 2.0]), capacity=10.0)["nmae"]
0.025
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# MAPE explodes when actuals approach zero (PV at night): such points are left out, and MAPE is
# reported only if most points remain.
MAPE_MIN_ABS_ACTUAL_SHARE = 0.05


def _pairs(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}; pass aligned arrays")
    ok = np.isfinite(t) & np.isfinite(p)
    return t[ok], p[ok]


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    t, p = _pairs(y_true, y_pred)
    return float(np.mean(np.abs(p - t))) if t.size else float("nan")


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    t, p = _pairs(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2))) if t.size else float("nan")


def bias(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean error (prediction minus actual): positive means over-forecasting."""
    t, p = _pairs(y_true, y_pred)
    return float(np.mean(p - t)) if t.size else float("nan")


def mape(y_true: ArrayLike, y_pred: ArrayLike, min_abs_actual: float | None = None) -> float:
    """Mean absolute percentage error over points whose |actual| ≥ `min_abs_actual`.

    The default threshold is 5% of the largest |actual|; NaN when fewer than half the points remain.
    """
    t, p = _pairs(y_true, y_pred)
    if not t.size:
        return float("nan")
    floor = MAPE_MIN_ABS_ACTUAL_SHARE * float(np.max(np.abs(t))) if min_abs_actual is None else min_abs_actual
    keep = np.abs(t) >= max(floor, np.finfo(float).tiny)
    if keep.sum() < 0.5 * t.size:
        return float("nan")
    return float(np.mean(np.abs((p[keep] - t[keep]) / t[keep])))


def skill_score(y_true: ArrayLike, y_pred: ArrayLike, y_reference: ArrayLike) -> float:
    """1 - RMSE(model) / RMSE(reference), e.g. against persistence: > 0 means better than the reference."""
    t, p = np.asarray(y_true, float).ravel(), np.asarray(y_pred, float).ravel()
    r = np.asarray(y_reference, float).ravel()
    ok = np.isfinite(t) & np.isfinite(p) & np.isfinite(r)
    ref = rmse(t[ok], r[ok])
    return float(1.0 - rmse(t[ok], p[ok]) / ref) if ok.any() and ref > 0 else float("nan")


def energy_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    capacity: float | None = None,
    y_reference: ArrayLike | None = None,
) -> dict[str, float]:
    """MAE, RMSE, bias, MAPE, and with `capacity` nMAE/nRMSE; with a reference, the skill score.

    >>> energy_metrics([0, 2, 4], [1, 2, 3], capacity=4)["nrmse"]  # doctest: +ELLIPSIS
    0.204...
    """
    t, p = _pairs(y_true, y_pred)
    out = {"mae": mae(t, p), "rmse": rmse(t, p), "bias": bias(t, p), "mape": mape(t, p), "n": float(t.size)}
    if capacity is not None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive (installed kW/MW of the plant), not {capacity}")
        out["nmae"] = out["mae"] / capacity
        out["nrmse"] = out["rmse"] / capacity
    if y_reference is not None:
        out["skill"] = skill_score(y_true, y_pred, y_reference)
    return out
