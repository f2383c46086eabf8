"""Feature matrices from a spec: listed columns, or a feature set (`pv_features` or `module:function`).

>>> X = build_features(frame, spec, "data.csv")  # doctest: +SKIP

With both, `features` picks columns of the feature set's output (a fleet can compare subsets).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from maestrale.training.validate import DataError, require_columns

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.training.spec import TrainingSpec

# The input columns each built-in feature set reads, checked up front for a clear message.
BUILTIN = {"pv_features": ("maestrale.datasets.features:pv_features", ["ghi", "temp_air"])}


def resolve_feature_set(name: str) -> tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]:
    """`(function, required input columns)` of a feature set name or `module:function`."""
    target, required = BUILTIN.get(name, (name, []))
    module_name, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise DataError(
            f"feature_set {name!r} cannot be loaded ({exc}): use pv_features or module:function"
        ) from None
    return fn, required


def build_features(frame: pd.DataFrame, spec: TrainingSpec, label: str) -> pd.DataFrame:
    """The model's input columns for the rows of `frame` (indexed by time)."""
    if spec.feature_set is None:
        assert spec.features is not None  # the spec requires one of the two
        require_columns(frame, spec.features, label, "a feature")
        return frame[spec.features]
    fn, required = resolve_feature_set(spec.feature_set)
    require_columns(frame, required, label, f"an input of feature_set {spec.feature_set}")
    X = fn(frame)
    if spec.features is not None:
        missing = [c for c in spec.features if c not in X.columns]
        if missing:
            raise DataError(
                f"features {missing} are not produced by feature_set {spec.feature_set} on {label}; "
                f"it produces: {', '.join(map(str, X.columns))}"
            )
        X = X[spec.features]
    return X
