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
