"""Feature matrices from a spec: listed columns, or a feature set, named without trusting the spec.

>>> X = build_features(frame, spec, "data.csv")  # doctest: +SKIP

A feature set is a built-in (`pv_features`), a plugin of the `maestrale.feature_sets` entry-point
group, or `module:function` from a module the admin lists in `MAESTRALE_ESTIMATOR_MODULES`. Nothing
else is imported: `feature_set: os:system` would otherwise call `os.system(frame)`. A plugin package
declares, in its pyproject.toml::

    [project.entry-points."maestrale.feature_sets"]
    acme-pv = "acme_models.features:pv_frame"    # function(frame) -> feature frame

With both, `features` picks columns of the feature set's output (a fleet can compare subsets).
Importing this module is cheap (the spec validator uses it); pandas loads when features are built.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from maestrale.training import coderefs

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.training.spec import TrainingSpec

ENTRY_POINT_GROUP = "maestrale.feature_sets"
# The input columns each built-in feature set reads, checked up front for a clear message.
BUILTIN = {"pv_features": ("maestrale.datasets.features:pv_features", ["ghi", "temp_air"])}
HOW = (
    f"use one of {', '.join(BUILTIN)}, a plugin of the {ENTRY_POINT_GROUP!r} entry-point group, or "
    "module:function (a function taking the data frame and returning the feature frame) from a module "
    "the admin lists in MAESTRALE_ESTIMATOR_MODULES"
)
_PLUGIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@functools.lru_cache(maxsize=1)
def plugins() -> dict[str, Any]:
    """Installed feature-set plugins by name (entry points of the `maestrale.feature_sets` group)."""
    return coderefs.entry_points_of(ENTRY_POINT_GROUP)


def check_feature_set_ref(name: str) -> str:
    """Check a feature-set reference without importing anything (spec validation); ValueError says why.

    >>> check_feature_set_ref("pv_features")
    'pv_features'
    """
    if name in BUILTIN:
        return name
    if ":" in name:
        module, _ = coderefs.split_ref(name, "feature_set", HOW)
        if not coderefs.module_allowed(module, coderefs.admin_modules()):
            raise ValueError(f"feature_set {name} is not from a module the admin trusts: {HOW}")
        return name
    if _PLUGIN_RE.match(name) and coderefs.installed(plugins, name):
        return name
    raise ValueError(f"unknown feature_set {name!r}: {HOW}")


def resolve_feature_set(name: str) -> tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]:
    """`(function, required input columns)` of a feature-set reference, checked before it is imported."""
    from maestrale.training.validate import DataError

    try:
        check_feature_set_ref(name)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    fn: Any
    required: list[str] = []
    if name in BUILTIN:
        target, required = BUILTIN[name]
        fn = coderefs.import_member(name, *target.split(":"), "feature_set")
    elif ":" in name:
        admin = coderefs.admin_modules()
        fn = coderefs.import_member(name, *coderefs.split_ref(name, "feature_set", HOW), "feature_set")
        # a function written in the admin's module, not one it imported (`from os import system`)
        if not (inspect.isfunction(fn) and coderefs.defined_under(fn, admin)):
            raise DataError(f"feature_set {name} is not a function defined in that module: {HOW}")
    else:
        try:
            fn = plugins()[name].load()
        except Exception as exc:  # a broken plugin must say which one and why
            raise DataError(f"feature_set plugin {name!r} failed to load: {exc}") from exc
    if not callable(fn):
        raise DataError(f"feature_set {name!r} is a {type(fn).__name__}, not a function: {HOW}")
    return fn, required


def build_features(frame: pd.DataFrame, spec: TrainingSpec, label: str) -> pd.DataFrame:
    """The model's input columns for the rows of `frame` (indexed by time)."""
    from maestrale.training.validate import DataError, require_columns

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
