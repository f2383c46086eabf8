"""Feature sets: which function a spec's `feature_set` names, which inputs it reads, and the model's inputs.

>>> info = describe_feature_set("pv_features")
>>> info.required, info.optional
(('ghi', 'temp_air'), ('ghi_clear',))

A feature set is a built-in (`pv_features`), a plugin of the `maestrale.feature_sets` entry-point
group, or `module:function` from a module the admin lists in `MAESTRALE_ESTIMATOR_MODULES`. Nothing
else is imported: `feature_set: os:system` would otherwise call `os.system(frame)`. A plugin package
declares, in its pyproject.toml::

    [project.entry-points."maestrale.feature_sets"]
    acme-pv = "acme_models.features:pv_frame"    # function(frame) -> feature frame

The function takes a frame indexed by time (tz-aware) with the weather columns and returns the feature
frame; it must be row-wise (each output row from its own input row), because the served model calls
it on the rows of each request. It declares its inputs with `maestrale.features.declare_inputs`;
an undeclared function receives every column of the data but the target, and the model then takes
all of them. The registered model is `Pipeline([("features", FeatureStep), ("model", estimator)])`
(`maestrale.features.FeatureStep`), so callers send the raw inputs and the features travel with it.

With both, `features` picks columns of the feature set's output (a fleet can compare subsets).
Importing this module is cheap (the spec validator uses it); pandas loads when features are built.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maestrale.training import coderefs

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.features.step import FeatureStep
    from maestrale.training.spec import TrainingSpec

ENTRY_POINT_GROUP = "maestrale.feature_sets"
# Built-in feature sets: the function, the inputs it needs, and the inputs it uses when present.
BUILTIN = {
    "pv_features": ("maestrale.datasets.features:pv_features", ["ghi", "temp_air"], ["ghi_clear"]),
}
HOW = (
    f"use one of {', '.join(BUILTIN)}, a plugin of the {ENTRY_POINT_GROUP!r} entry-point group, or "
    "module:function (a function taking the data frame and returning the feature frame) from a module "
    "the admin lists in MAESTRALE_ESTIMATOR_MODULES"
)
_PLUGIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class FeatureSetInfo:
    """A resolved feature set: its function and declared inputs (`required` None: undeclared)."""

    name: str
    fn: Callable[[pd.DataFrame], pd.DataFrame]
    required: tuple[str, ...] | None
    optional: tuple[str, ...] = ()


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


def describe_feature_set(name: str) -> FeatureSetInfo:
    """The function and declared inputs of a feature-set reference, checked before it is imported.

    Raises `DataError` (400) for a reference that is unknown or not from a trusted module.
    """
    from maestrale.training.validate import DataError

    try:
        check_feature_set_ref(name)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    fn: Any
    if name in BUILTIN:
        target, required, optional = BUILTIN[name]
        module, _, member = target.partition(":")
        fn = coderefs.import_member(name, module, member, "feature_set")
        return FeatureSetInfo(name, fn, tuple(required), tuple(optional))
    if ":" in name:
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
    return FeatureSetInfo(name, fn, *_declared(fn, name))


def _declared(fn: Any, name: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The inputs a function declared with `maestrale.features.declare_inputs` (None: undeclared)."""
    from maestrale.training.validate import DataError

    required, optional = getattr(fn, "required_inputs", None), getattr(fn, "optional_inputs", ())
    if required is None:
        return None, ()
    lists = (required, optional)
    if not all(isinstance(x, list | tuple) and all(isinstance(c, str) for c in x) for x in lists):
        raise DataError(
            f"feature_set {name!r} declares its inputs wrongly: use maestrale.features.declare_inputs("
            "required=['ghi'], optional=['ghi_clear'])"
        )
    return tuple(required), tuple(optional)


def resolve_feature_set(name: str) -> tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]:
    """`(function, required input columns)` of a feature-set reference (`[]` when undeclared)."""
    info = describe_feature_set(name)
    return info.fn, list(info.required or ())


@dataclass(frozen=True, slots=True)
class BuiltFeatures:
    """The estimator's feature matrix, and with a feature set the model's raw inputs and its step.

    `raw` (indexed by time) holds exactly the columns the registered model takes besides the time;
    `step` is the fitted `FeatureStep` that turns such rows into `X`. Both are None for `features:`
    specs, whose model takes `X`'s columns as they are.
    """

    X: pd.DataFrame
    raw: pd.DataFrame | None = None
    step: FeatureStep | None = None


def build_features(frame: pd.DataFrame, spec: TrainingSpec, label: str) -> BuiltFeatures:
    """The model's features for the rows of `frame` (indexed by time), built as the served model will.

    With a feature set, `X` comes from a `FeatureStep` fitted here: the same code that runs when the
    registered pipeline predicts, so training and serving cannot compute the features differently.
    """
    from maestrale.features.step import FeatureInputError, FeatureStep
    from maestrale.training.validate import DataError, require_columns

    if spec.feature_set is None:
        assert spec.features is not None  # the spec requires one of the two
        require_columns(frame, spec.features, label, "a feature")
        return BuiltFeatures(frame[spec.features])
    step = FeatureStep(
        spec.feature_set, time_column=str(frame.index.name or "time"), timezone=spec.timezone,
        features=spec.features,
    )  # fmt: skip
    candidates = frame.drop(columns=[spec.target])  # the target is never a model input
    try:
        X = step.fit_transform(candidates)
    except FeatureInputError as exc:
        raise DataError(f"{label}: {exc.message}") from None
    return BuiltFeatures(X, candidates[step.inputs_], step)


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "BuiltFeatures",
    "FeatureSetInfo",
    "build_features",
    "check_feature_set_ref",
    "describe_feature_set",
    "plugins",
    "resolve_feature_set",
]
