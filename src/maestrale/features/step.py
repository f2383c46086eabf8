"""`FeatureStep`: raw inputs (the time and the weather columns) in, the spec's feature columns out.

>>> import pandas as pd
>>> raw = pd.DataFrame({"time": ["2024-06-01T12:00:00+02:00"], "ghi": [800.0], "ghi_clear": [900.0],
...                     "temp_air": [24.0]})
>>> step = FeatureStep("pv_features").fit(raw)
>>> step.input_columns, step.features_[-2:]
(['time', 'ghi', 'temp_air', 'ghi_clear'], ['clearsky_index', 'temp_air'])
>>> step.transform(raw)["clearsky_index"].round(3).tolist()
[0.889]
>>> step.transform(raw.drop(columns=["ghi_clear"]))  # doctest: +ELLIPSIS
Traceback (most recent call last):
maestrale.features.step.FeatureInputError: missing input(s) ghi_clear: this model takes time ...

An optional input that is absent at `fit` is an error unless the step's `features` leave out what it
computes (`FeatureStep("pv_features", features=["hour_sin", "ghi", "temp_air"])`): a feature is never
dropped silently.

The step stores data only: the feature set's name, the time column, the zone of naive times, and
after `fit` the input columns it read (`inputs_`), the optional inputs that were absent
(`optional_absent_`) and the output columns (`features_`). The feature function is looked up by name
on every call through `maestrale.training.features.describe_feature_set`, the same rules as a spec,
so a crafted artifact cannot make it call anything a spec could not name.

A missing input is a `FeatureInputError` (a `ValueError` and an `InvalidInput`: HTTP 400 on the model
servers) that names it and lists what the model takes. Times follow `maestrale.timeparse`: with an
offset anywhere; naive only when the step has a `timezone` (the spec's), then localized in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from maestrale.errors import ConfigError, InvalidInput
from maestrale.timeparse import TimeParseError, parse_times


class FeatureInputError(InvalidInput, ValueError):
    """The rows given to a feature step lack an input, or hold times it cannot read; says which."""


class FeatureStep(TransformerMixin, BaseEstimator):
    """The spec's `feature_set` as a scikit-learn transformer: raw inputs → the model's features.

    Parameters (stored as given, scikit-learn style):

    - `feature_set`: the name a spec uses (`pv_features`, a plugin, `module:function`);
    - `time_column`: the input holding each row's time (or the frame's DatetimeIndex if absent);
    - `timezone`: the zone naive times are in (None: times must carry an offset); the feature
      function sees its index in this zone (UTC-derived features are unaffected);
    - `features`: the output columns to keep, in order (None: all the function produces).

    >>> FeatureStep("pv_features", timezone="Europe/Rome").fit(raw).input_columns  # doctest: +SKIP
    ['time', 'ghi', 'ghi_clear', 'temp_air']
    """

    def __init__(
        self,
        feature_set: str = "pv_features",
        time_column: str = "time",
        timezone: str | None = None,
        features: list[str] | None = None,
    ) -> None:
        self.feature_set = feature_set
        self.time_column = time_column
        self.timezone = timezone
        self.features = features

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a stored step is attacker-chosen data until checked: strings and lists of strings only, and a
        # zone that is a zone; the feature set itself is resolved (under a spec's rules) only when used
        _check_state(state)
        super().__setstate__(state)

    # -- scikit-learn API --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> FeatureStep:
        """Record which inputs `X` offers (required ones must be there) and which features come out."""
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        """`fit(X).transform(X)`, computing the features once."""
        return self._fit(X)

    def transform(self, X: Any) -> pd.DataFrame:
        """The feature columns (`features_`, in order) for the rows of `X`, indexed by their times."""
        check_is_fitted(self, "features_")
        info = self._info()
        out = self._call(info.fn, self._frame(X, self.inputs_))
        missing = [f for f in self.features_ if f not in out.columns]
        if missing:
            raise ConfigError(
                f"feature_set {self.feature_set} no longer produces {missing}, which this model was trained "
                "on: install the version of the feature set the model was trained with, or retrain it"
            )
        return out[self.features_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output column names (`features_`)."""
        check_is_fitted(self, "features_")
        return np.asarray(self.features_, dtype=object)

    # -- what callers send -------------------------------------------------------------------------------
    @property
    def input_columns(self) -> list[str]:
        """Every input the model takes, the time first: what a client sends."""
        check_is_fitted(self, "inputs_")
        return [self.time_column, *self.inputs_]

    def check(self) -> None:
        """Resolve the feature function now (a model server calls this at load, not at the first request).

        Raises `ConfigError` when this process may not or cannot run the feature set (a plugin that is
        not installed, a module missing from MAESTRALE_ESTIMATOR_MODULES).
        """
        self._info()

    # -- internals ---------------------------------------------------------------------------------------
    def _info(self) -> Any:
        from maestrale.training.features import describe_feature_set

        try:
            return describe_feature_set(self.feature_set)
        except InvalidInput as exc:  # the process's configuration, not the caller's rows
            raise ConfigError(
                f"this model computes its features with feature_set {self.feature_set}, which this process "
                f"cannot use: {exc.message}"
            ) from None

    def _fit(self, X: Any) -> pd.DataFrame:
        info = self._info()
        columns = [str(c) for c in getattr(X, "columns", ()) if str(c) != self.time_column]
        absent: list[str] = []
        if info.required is None:  # undeclared: every column offered is an input
            inputs = columns
        else:
            missing = [c for c in info.required if c not in columns]
            if missing:
                raise FeatureInputError(
                    f"feature_set {self.feature_set} needs input(s) {', '.join(missing)}, which are missing "
                    f"(columns present: {', '.join(columns) or 'none'}); rename or add them"
                )
            inputs = [*info.required, *(c for c in info.optional if c in columns)]
            absent = [c for c in info.optional if c not in columns]
        out = self._call(info.fn, self._frame(X, inputs))
        produced = [str(c) for c in out.columns]
        if absent and self.features is None:
            # all features asked for, but some come only from an absent input: never drop them silently
            raise FeatureInputError(
                f"feature_set {self.feature_set} computes some of its features from {_named(absent)}, which "
                f"{'is' if len(absent) == 1 else 'are'} missing: add {'it' if len(absent) == 1 else 'them'}, "
                f"or list the features to keep without {'it' if len(absent) == 1 else 'them'} in the spec: "
                f"`features: [{', '.join(produced)}]`"
            )
        wanted = list(self.features) if self.features is not None else produced
        if missing := [f for f in wanted if f not in produced]:
            note = f"; the optional input(s) {', '.join(absent)} are absent" if absent else ""
            raise FeatureInputError(
                f"features {missing} are not produced by feature_set {self.feature_set} from these inputs; "
                f"it produces: {', '.join(produced)}{note}"
            )
        self.inputs_, self.optional_absent_, self.features_ = inputs, absent, wanted
        return out[wanted]

    def _frame(self, X: Any, inputs: list[str]) -> pd.DataFrame:
        """The inputs as the feature function reads them: indexed by tz-aware time, columns `inputs`."""
        takes = f"{self.time_column} (each row's time), {', '.join(inputs)}"
        if not isinstance(X, pd.DataFrame):
            raise FeatureInputError(
                f"this model reads its inputs by name: pass a DataFrame with columns {takes}, "
                f"not a {type(X).__name__}"
            )
        if self.time_column in X.columns:
            times: Any = X[self.time_column]
        elif isinstance(X.index, pd.DatetimeIndex):
            times = X.index
        else:
            times = None
        missing = [c for c in inputs if c not in X.columns] + ([self.time_column] if times is None else [])
        if missing:
            raise FeatureInputError(f"missing input(s) {', '.join(missing)}: this model takes {takes}")
        zone_fix = (
            "send each time with an offset, e.g. 2024-06-01T12:00:00+02:00 (this model was trained on "
            "times with offsets, so it cannot guess the zone of a naive time)"
        )
        try:
            index = parse_times(
                times, timezone=self.timezone, what=f"input {self.time_column!r}", zone_fix=zone_fix
            )
        except TimeParseError as exc:
            raise FeatureInputError(exc.message) from None
        frame = pd.DataFrame({c: X[c].to_numpy() for c in inputs}, index=index)
        frame.index.name = self.time_column
        return frame

    def _call(self, fn: Any, frame: pd.DataFrame) -> pd.DataFrame:
        out = fn(frame)
        if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
            got = f"{len(out)} rows" if isinstance(out, pd.DataFrame) else f"a {type(out).__name__}"
            raise ConfigError(
                f"feature_set {self.feature_set} returned {got} for {len(frame)} input rows: a feature "
                "function must return one feature row per input row, as a DataFrame"
            )
        return out


_STATE_STRINGS = ("feature_set", "time_column")
_STATE_LISTS = ("features", "inputs_", "optional_absent_", "features_")


def _check_state(state: Any) -> None:
    """Refuse a stored FeatureStep whose state is anything but the strings and lists it should be."""
    from maestrale.errors import UntrustedArtifact
    from maestrale.timeparse import TimeParseError, check_timezone

    def refuse(why: str) -> UntrustedArtifact:
        return UntrustedArtifact(f"a FeatureStep in this artifact {why}: refusing it (re-register the model)")

    if not isinstance(state, dict):
        raise refuse(f"has a {type(state).__name__} for its state")
    for key, value in state.items():
        if key in _STATE_STRINGS:
            ok = isinstance(value, str) and 0 < len(value) <= 200
        elif key in _STATE_LISTS:
            ok = value is None or (
                isinstance(value, list) and len(value) <= 10_000 and all(isinstance(v, str) for v in value)
            )
        elif key == "timezone":
            ok = value is None or isinstance(value, str)
        else:
            ok = key == "_sklearn_version" and isinstance(value, str)
        if not ok:
            raise refuse(f"holds {key!r} = {type(value).__name__}, which a FeatureStep never stores")
    if state.get("timezone") is not None:
        try:
            check_timezone(state["timezone"])
        except TimeParseError as exc:
            raise refuse(f"names an invalid time zone ({exc.message})") from None


#: What an optional input of a built-in feature set is, and where to get it, for messages.
_INPUT_HINTS = {
    "ghi_clear": "ghi_clear (clear-sky GHI at the site, W/m², e.g. pvlib "
    "Location(lat, lon).get_clearsky(times)['ghi']; pv_features derives clearsky_index from it)",
}


def _named(columns: list[str]) -> str:
    return ", ".join(_INPUT_HINTS.get(c, c) for c in columns)


def step_of(model: Any) -> FeatureStep | None:
    """The `FeatureStep` a registered model starts with (a feature pipeline), else None.

    >>> step_of(Pipeline([("features", FeatureStep()), ("model", Ridge())])).feature_set  # doctest: +SKIP
    'pv_features'
    """
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[0], tuple) and len(steps[0]) == 2:
        first = steps[0][1]
        return first if isinstance(first, FeatureStep) else None
    return None


__all__ = ["FeatureInputError", "FeatureStep", "step_of"]
