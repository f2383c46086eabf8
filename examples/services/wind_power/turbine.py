"""The turbine's published power curve as a scikit-learn model, and the farm model that corrects it.

Both are built only from scikit-learn classes, so the registry stores them with skops and any
`maestrale serve` or `Registry.load` rebuilds them without `trusted_types` and without this file:

- `power_curve(turbines)`: the curve interpolated linearly between its published points, times the
  number of turbines. A degree-1 B-spline basis with one knot per published wind speed is a set of
  "hat" functions, and a linear regression without intercept fitted on the points themselves gets
  exactly the published values as coefficients, so `predict` is `numpy.interp` on the curve (constant
  outside it: 0 below the first point, 0 above cut-out).
- `physical_baseline(turbines)`: that curve, frozen (`sklearn.frozen.FrozenEstimator`, scikit-learn ≥ 1.6),
  so `fit` on farm data changes nothing: what the farm would forecast with physics alone.
- `corrected_power_curve(turbines, ...)`: a `StackingRegressor` whose only base estimator is the frozen
  curve; its final estimator (gradient boosting) sees the curve's power next to the inputs (wind
  speed, direction, air density) and learns the farm's own deviations from the curve: wakes by
  direction, air density, availability, the weather forecast's error.

The training specs name the factories (`estimator: turbine:corrected_power_curve`), so `maestrale train`
must be able to import this module and trust it: run it from this folder with `PYTHONPATH=.` and
`MAESTRALE_ESTIMATOR_MODULES=turbine`, or package the module and declare the factories in the
`maestrale.estimators` entry-point group.

Power curve: Enercon E-126/4200 (EP4), 4.2 MW, from the Open Energy Platform's Wind Turbine Library
(© Reiner Lemoine Institut, Open Data Commons Open Database License 1.0,
https://openenergy-platform.org/dataedit/view/supply/wind_turbine_library), as distributed with
windpowerlib (MIT) in `windpowerlib/data/oedb_power_curves.csv`; the library took it from the
manufacturer's data sheet. `E126_4200_CURVE` below is that curve's points and is under the ODbL 1.0.
The library's curve ends at 25 m/s; the cut-out to 0 just above 25 m/s is ours (the E-126's storm
control actually ramps power down more gradually at higher speeds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Enercon E-126/4200 power curve: (hub-height wind speed m/s, power kW), air density 1.225 kg/m³.
#: Source and licence: see the module docstring (OEP Wind Turbine Library, ODbL 1.0).
E126_4200_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (1.0, 0.0),
    (2.0, 0.0),
    (3.0, 58.0),
    (4.0, 185.0),
    (5.0, 400.0),
    (6.0, 745.0),
    (7.0, 1200.0),
    (8.0, 1790.0),
    (9.0, 2450.0),
    (10.0, 3120.0),
    (11.0, 3660.0),
    (12.0, 4000.0),
    (13.0, 4150.0),
    (14.0, 4200.0),
    (15.0, 4200.0),
    (16.0, 4200.0),
    (17.0, 4200.0),
    (18.0, 4200.0),
    (19.0, 4200.0),
    (20.0, 4200.0),
    (21.0, 4200.0),
    (22.0, 4200.0),
    (23.0, 4200.0),
    (24.0, 4200.0),
    (25.0, 4200.0),
)
TURBINE = "Enercon E-126/4200"
RATED_KW = 4200.0
CUT_OUT_MS = 25.0
#: The model's inputs, in this order (the registered input schema; every version takes the same).
FEATURES = ["wind_speed", "wind_direction", "air_density"]


def curve_points() -> tuple[np.ndarray, np.ndarray]:
    """(wind speeds m/s, power kW) of one turbine, with the cut-out to 0 added just above 25 m/s."""
    ws = np.array([p[0] for p in E126_4200_CURVE] + [CUT_OUT_MS + 0.01])
    kw = np.array([p[1] for p in E126_4200_CURVE] + [0.0])
    return ws, kw


def turbine_power_kw(wind_speed: np.ndarray) -> np.ndarray:
    """One turbine's power (kW) at hub-height `wind_speed` (m/s): the curve interpolated, 0 past cut-out."""
    ws, kw = curve_points()
    return np.interp(wind_speed, ws, kw, left=0.0, right=0.0)


def power_curve(turbines: int) -> Any:
    """A fitted scikit-learn Pipeline: farm power (MW) = `turbines` × the curve at `wind_speed`.

    >>> model = power_curve(10)
    >>> model.predict(pd.DataFrame({"wind_speed": [2.0, 7.5, 14.0, 30.0]})).round(3).tolist()
    [0.0, 14.95, 42.0, 0.0]
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import SplineTransformer

    ws, kw = curve_points()
    model = Pipeline(
        [
            ("wind_speed", ColumnTransformer([("ws", "passthrough", ["wind_speed"])])),
            # degree 1: one hat function per published point; constant beyond the first and last knot
            ("hats", SplineTransformer(knots=ws.reshape(-1, 1), degree=1, extrapolation="constant")),
            ("power", LinearRegression(fit_intercept=False)),
        ]
    )
    return model.fit(pd.DataFrame({"wind_speed": ws}), kw * turbines / 1000.0)


def physical_baseline(turbines: int = 10) -> Any:
    """The farm's power curve, frozen: `fit` leaves it as published (a `maestrale.estimators` factory)."""
    from sklearn.frozen import FrozenEstimator

    return FrozenEstimator(power_curve(turbines))


def corrected_power_curve(
    turbines: int = 10,
    max_iter: int = 200,
    learning_rate: float = 0.05,
    max_leaf_nodes: int = 31,
    random_state: int | None = 0,
) -> Any:
    """The frozen curve plus a gradient-boosting correction fitted on the farm's data (a factory).

    The final estimator's inputs are `[curve power, wind_speed, wind_direction, air_density]`.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor, StackingRegressor

    correction = HistGradientBoostingRegressor(
        max_iter=max_iter,
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        random_state=random_state,
    )
    # cv=2: the curve is frozen, so its out-of-fold predictions are its predictions; more folds cost time only
    return StackingRegressor(
        [("power_curve", physical_baseline(turbines))], final_estimator=correction, passthrough=True, cv=2
    )
