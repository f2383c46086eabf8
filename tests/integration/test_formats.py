"""Native formats for gradient-boosting libraries, through the real registry."""

from __future__ import annotations

import numpy as np
import pytest

from maestrale.errors import UntrustedArtifact


def test_lightgbm_sklearn_model_roundtrips_natively(sqlite_registry, regression_data):
    lightgbm = pytest.importorskip("lightgbm")
    X, y = regression_data
    model = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1, random_state=0).fit(X, y)
    mv = sqlite_registry.register("lgbm", model, input_example=X.head())
    assert mv.artifact.format == "lightgbm" and mv.package_versions["lightgbm"] == lightgbm.__version__
    loaded = sqlite_registry.load(mv.ref)
    assert isinstance(loaded, lightgbm.Booster)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-12)


def test_lightgbm_booster_roundtrips(sqlite_registry, regression_data):
    lightgbm = pytest.importorskip("lightgbm")
    X, y = regression_data
    booster = lightgbm.train({"verbose": -1, "objective": "regression"}, lightgbm.Dataset(X, y), 20)
    mv = sqlite_registry.register("lgbm-booster", booster)
    np.testing.assert_allclose(sqlite_registry.load(mv.ref).predict(X), booster.predict(X))


def test_xgboost_sklearn_model_roundtrips_natively(sqlite_registry, regression_data):
    xgboost = pytest.importorskip("xgboost")
    X, y = regression_data
    model = xgboost.XGBRegressor(n_estimators=30, max_depth=3, random_state=0).fit(X, y)
    mv = sqlite_registry.register("xgb", model)
    assert mv.artifact.format == "xgboost" and mv.artifact.flavor == "xgboost.sklearn.XGBRegressor"
    loaded = sqlite_registry.load(mv.ref)
    assert type(loaded).__name__ == "XGBRegressor"
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)


def test_xgboost_artifact_cannot_name_a_foreign_class():
    from maestrale.registry.formats import deserialize

    with pytest.raises(UntrustedArtifact, match="refusing to build os.system"):
        deserialize(b"{}", "xgboost", "os.system")


def test_custom_transformer_needs_trusted_types(sqlite_registry, regression_data):
    from sklearn.pipeline import make_pipeline

    from maestrale.errors import UnsupportedModel
    from tests.unit.custom_estimators import ClipTransformer

    X, y = regression_data
    pipe = make_pipeline(ClipTransformer(), __import__("sklearn.linear_model").linear_model.Ridge()).fit(X, y)
    with pytest.raises(UnsupportedModel, match="tests.unit.custom_estimators.ClipTransformer"):
        sqlite_registry.register("custom", pipe)
    trusted = ["tests.unit.custom_estimators.ClipTransformer"]
    mv = sqlite_registry.register("custom", pipe, trusted_types=trusted)
    with pytest.raises(UntrustedArtifact, match="trusted_types"):
        sqlite_registry.load(mv.ref)
    np.testing.assert_allclose(
        sqlite_registry.load(mv.ref, trusted_types=trusted).predict(X), pipe.predict(X)
    )


def test_onnx_model_roundtrips(sqlite_registry, regression_data):
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    X, y = regression_data
    model = Ridge().fit(X, y)
    proto = skl2onnx.convert_sklearn(model, initial_types=[("X", FloatTensorType([None, X.shape[1]]))])
    mv = sqlite_registry.register("onnx-ridge", proto)
    assert mv.artifact.format == "onnx"
    loaded = sqlite_registry.load(mv.ref)
    np.testing.assert_allclose(loaded.predict(X).ravel(), model.predict(X), rtol=1e-4, atol=1e-4)


def _legit_models(X, y):
    """Fitted models of every family whose internals need Maestrale's curated allowlist."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )
    from sklearn.feature_selection import SelectKBest, f_regression
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, SplineTransformer, StandardScaler

    Xc = X.assign(site=pd.Categorical(np.where(X["x0"] > 0, "a", "b")))
    column = ColumnTransformer(
        [("num", StandardScaler(), list(X.columns)), ("cat", OneHotEncoder(), ["site"])]
    )
    return {
        "ridge": (Ridge().fit(X, y), X),
        "hgb": (HistGradientBoostingRegressor(max_iter=20).fit(X, y), X),
        "hgb-categorical": (
            HistGradientBoostingRegressor(max_iter=5, categorical_features="from_dtype").fit(Xc, y),
            Xc,
        ),
        "forest": (RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y), X),
        "gbr": (GradientBoostingRegressor(n_estimators=5).fit(X, y), X),
        "pipeline": (make_pipeline(column, SelectKBest(f_regression, k=5), Ridge()).fit(Xc, y), Xc),
        "knn": (KNeighborsRegressor(algorithm="kd_tree").fit(X, y), X),
        "gp": (GaussianProcessRegressor(RBF() + WhiteKernel()).fit(X[:50], y[:50]), X),
        "spline": (make_pipeline(SplineTransformer(), Ridge()).fit(X, y), X),
    }


@pytest.mark.parametrize("where", ["sqlite_registry", "remote_registry"])
def test_legitimate_skops_models_load_with_default_arguments(request, where, regression_data):
    """Allowlist, tree checks and REST vetting accept everything scikit-learn itself writes."""
    reg = request.getfixturevalue(where)
    X, y = regression_data
    for name, (model, data) in _legit_models(X, y).items():
        mv = reg.register(name, model)
        np.testing.assert_allclose(reg.load(mv.ref).predict(data), model.predict(data), err_msg=name)


def test_native_formats_register_and_load_over_rest(remote_registry, regression_data):
    X, y = regression_data
    lightgbm = pytest.importorskip("lightgbm")
    xgboost = pytest.importorskip("xgboost")
    lgb = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y > 0)
    xgb = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y > 0)
    mv = remote_registry.register("lgb-rest", lgb)
    assert mv.artifact.flavor == "lightgbm.sklearn.LGBMClassifier"
    np.testing.assert_allclose(remote_registry.load(mv.ref).predict(X), lgb.predict_proba(X)[:, 1])
    mv = remote_registry.register("xgb-rest", xgb)
    np.testing.assert_array_equal(remote_registry.load(mv.ref).predict(X), xgb.predict(X))
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    ridge = Ridge().fit(X, y)
    proto = skl2onnx.convert_sklearn(ridge, initial_types=[("X", FloatTensorType([None, X.shape[1]]))])
    mv = remote_registry.register("onnx-rest", proto)
    np.testing.assert_allclose(
        remote_registry.load(mv.ref).predict(X).ravel(), ridge.predict(X), rtol=1e-4, atol=1e-4
    )


def test_custom_types_declared_over_rest(remote_registry, regression_data):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    from tests.unit.custom_estimators import ClipTransformer

    X, y = regression_data
    pipe = make_pipeline(ClipTransformer(), Ridge()).fit(X, y)
    trusted = ["tests.unit.custom_estimators.ClipTransformer"]
    mv = remote_registry.register("custom-rest", pipe, trusted_types=trusted)  # sent as a header
    np.testing.assert_allclose(
        remote_registry.load(mv.ref, trusted_types=trusted).predict(X), pipe.predict(X)
    )
    with pytest.raises(UntrustedArtifact, match="ClipTransformer"):
        remote_registry.load(mv.ref)
