"""The array fast path of the model server gives the same predictions as the DataFrame path."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from maestrale.registry.types import ColumnSchema
from maestrale.serving.repository import positional


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"ghi": rng.uniform(0, 1000, 200), "temp_air": rng.normal(15, 5, 200)})
    return X, 0.004 * X["ghi"].to_numpy() - 0.01 * X["temp_air"].to_numpy()


def _schema(*names: str) -> list[ColumnSchema]:
    return [ColumnSchema(name=n, dtype="float64") for n in names]


def test_plain_estimators_read_positions_and_predict_the_same():
    X, y = _data()
    for model in (Ridge().fit(X, y), HistGradientBoostingRegressor(max_iter=20).fit(X, y)):
        assert positional(model, _schema("ghi", "temp_air"))
        np.testing.assert_array_equal(model.predict(X.to_numpy()), model.predict(X))


def test_name_readers_and_other_orders_keep_the_dataframe():
    X, y = _data()
    assert not positional(Ridge().fit(X, y), _schema("temp_air", "ghi"))  # schema order ≠ fitted order
    assert not positional(make_pipeline(StandardScaler(), Ridge()).fit(X, y), _schema("ghi", "temp_air"))
    ct = ColumnTransformer([("s", StandardScaler(), ["ghi"])]).fit(X)
    assert not positional(ct, _schema("ghi", "temp_air"))
    assert not positional(Ridge().fit(X.to_numpy(), y), _schema("ghi", "temp_air"))  # fitted without names
    assert not positional(Ridge().fit(X, y), [*_schema("ghi"), ColumnSchema(name="temp_air", dtype="object")])
