"""`NativeModel`: a LightGBM or XGBoost model inside a feature pipeline, kept in its own native format.

>>> import lightgbm, numpy as np  # doctest: +SKIP
>>> est = lightgbm.LGBMRegressor(n_estimators=5).fit(np.random.rand(50, 2), np.random.rand(50))
... # doctest: +SKIP
>>> wrap_native(est).predict(np.random.rand(3, 2)).shape  # doctest: +SKIP
(3,)

A feature pipeline is stored with skops, and skops cannot store LightGBM or XGBoost models safely:
their state is native model bytes that the libraries parse in C. So the trainer wraps such an
estimator: the wrapper's state is the model's native bytes (LightGBM text, XGBoost UBJSON), its
format and its flavor, and rebuilding it runs `maestrale.registry.formats.deserialize` on them, with
the same structural checks (`native_checks`) and flavor allowlist as a bare native artifact. Nothing
else is ever built from those bytes.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, RegressorMixin

#: The formats a wrapped model may be in (the others are stored by skops or not at all).
NATIVE_FORMATS = ("lightgbm", "xgboost")


class NativeModel(RegressorMixin, BaseEstimator):
    """A fitted LightGBM/XGBoost model as native bytes; `predict` runs the model they describe.

    Build it with `wrap_native(fitted_estimator)`; `fit` is refused (refit the estimator and wrap
    it again), since the bytes are the model.
    """

    def __init__(self, format: str = "lightgbm", flavor: str = "", data: bytes = b"") -> None:
        self.format = format
        self.flavor = flavor
        self.data = data

    def fit(self, X: Any, y: Any = None, **kwargs: Any) -> NativeModel:
        """Refused: a NativeModel is a fitted model's bytes (wrap a freshly fitted estimator instead)."""
        raise TypeError(
            "a NativeModel holds a fitted model: fit the LightGBM/XGBoost estimator, then wrap_native it"
        )

    def predict(self, X: Any) -> Any:
        """The wrapped model's predictions for `X`."""
        return self.model.predict(X)

    def __sklearn_is_fitted__(self) -> bool:
        return bool(self.data)

    @property
    def model(self) -> Any:
        """The model rebuilt from the bytes (checked once, then kept)."""
        built = self.__dict__.get("_model")
        if built is None:
            built = self.__dict__["_model"] = _rebuild(self.format, self.flavor, self.data)
        return built

    def __getstate__(self) -> dict[str, Any]:
        # the bytes are the model: the rebuilt object is never stored
        state = super().__getstate__()
        state.pop("_model", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__({k: v for k, v in state.items() if k != "_model"})
        self.__dict__["_model"] = _rebuild(self.format, self.flavor, self.data)  # checked at load


def _rebuild(fmt: Any, flavor: Any, data: Any) -> Any:
    from maestrale.errors import UntrustedArtifact
    from maestrale.registry.formats import deserialize

    if fmt not in NATIVE_FORMATS or not isinstance(flavor, str) or not isinstance(data, bytes):
        raise UntrustedArtifact(
            f"a NativeModel in this pipeline declares format {fmt!r}; only {', '.join(NATIVE_FORMATS)} "
            "bytes may be wrapped: re-register the model from its training run"
        )
    return deserialize(data, fmt, flavor, what=f"the {fmt} model inside this pipeline")


def wrap_native(estimator: Any) -> Any:
    """`estimator` itself when skops stores it; a `NativeModel` of its bytes for LightGBM/XGBoost."""
    from maestrale.registry.formats import detect_format, serialize

    try:
        fmt = detect_format(estimator)
    except Exception:  # anything the registry cannot store: let registration say so, with its message
        return estimator
    if fmt not in NATIVE_FORMATS:
        return estimator
    stored = serialize(estimator, fmt)
    wrapped = NativeModel(stored.format, stored.flavor, stored.data)
    wrapped.__dict__["_model"] = estimator  # predicts as the fitted object until stored and loaded
    return wrapped


__all__ = ["NATIVE_FORMATS", "NativeModel", "wrap_native"]
