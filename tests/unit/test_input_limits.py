"""Bounds on client input outside the registry: durations, storable JSON, and Maestrale's own writers.

Windows and spec durations beyond 10 years overflowed `timedelta` (500 on the monitoring routes); the
profile of a column spanning ±1e308 or holding a constant 1e20 crashed the trainer; XGBoost's
`missing=nan` would now be refused by the registry unless the trainer records it as text.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from maestrale.limits import MAX_DURATION, check_int, json_problem
from maestrale.stats.profile import column_profile, reference_profile
from maestrale.training.spec import SpecError, load_spec
from maestrale.training.trainer import _param_value
from maestrale.vocabulary import parse_duration, parse_window

SPEC = """\
name: pv-nrel-50
data: {dataset: nrel_system50, freq: 1h}
target: power_kw
feature_set: pv_features
estimator: sklearn.ensemble:HistGradientBoostingRegressor
split:
  holdout: {test_start: 2011-08-01}
  backtest: {folds: 3, test_size: 14D}
baselines:
  persistence: {lag: LAG}
"""


@pytest.mark.parametrize(
    "window", ["99999999999D", "3651D", "521.5W", "87601h", "infD", "nanh", "-7D", "1e3D"]
)
def test_windows_beyond_ten_years_or_not_plain_numbers_are_refused(window: str):
    with pytest.raises(ValueError, match=r"maximum window, 3650D \(10 years\)|not a window"):
        parse_window(window)


def test_windows_up_to_ten_years_parse():
    assert parse_window("3650D") == MAX_DURATION
    assert parse_window(" 7 D ") == timedelta(days=7) and parse_window("1.5h") == timedelta(minutes=90)
    assert parse_duration("30s") == timedelta(seconds=30)


def test_spec_durations_are_bounded_too():
    assert load_spec(SPEC.replace("LAG", "24h")).baselines.persistence.lag == "24h"
    with pytest.raises(SpecError, match=r"maximum duration, 3650D \(10 years\)"):
        load_spec(SPEC.replace("LAG", "99999999999D"))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, 2.5, "x", None, True, {"b": []}]}, None),
        ({"a": [1.0, math.nan]}, "doc.a[1] is NaN"),
        ({"a": {"b": -math.inf}}, "doc.a.b is infinite"),
        ({"n": 2**63}, "doc.n is an integer beyond 64 bits"),
        ({"n": -(2**63)}, None),
        ({1: "x"}, "doc has a key 1 of type int"),
        ({"t": (1, 2)}, None),
        ({"s": "a\x00"}, "doc.s contains a NUL character"),
        ({"s": "\ud800"}, "doc.s is not valid Unicode"),
        ({"x": {1, 2}}, "doc.x is a set: only JSON values"),
        ({"np": np.float32(1.0)}, "doc.np is a float32"),
    ],
)
def test_json_problem_names_the_path(value: object, problem: str | None):
    found = json_problem(value, "doc")
    assert (found is None) if problem is None else (problem in str(found))


def test_json_problem_walks_deep_documents_without_recursion():
    deep: list = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]
    assert "nests deeper than 64 levels" in str(json_problem(deep, "spec"))


def test_check_int():
    assert check_int(2**31 - 1, "version") == 2**31 - 1
    for bad in (0, 2**31, True, 1.0):
        with pytest.raises(ValueError, match="version must be an integer from 1 to 2147483647"):
            check_int(bad, "version")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # std of ±1e308: None
@pytest.mark.parametrize(
    "values",
    [[-1.7e308, 0.0, 1.7e308, 1e308], [1e20] * 50, [3e16, 3e16], [np.inf, np.nan, 1.0], [np.nan, np.nan]],
)
def test_profiles_of_extreme_columns_are_finite_json(values: list[float]):
    column = column_profile(np.array(values))
    assert json_problem(column, "profile") is None
    assert sum(column["histogram"]["counts"]) == column["count"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_reference_profile_is_storable_json():
    import pandas as pd

    df = pd.DataFrame(
        {"big": [1e20] * 300, "wide": np.resize([-1.7e308, 0.0, 1.7e308], 300), "ok": np.arange(300.0)}
    )
    prof = reference_profile(
        df, np.arange(300.0), target=np.full(300, np.nan), months=np.repeat(np.arange(1, 4), 100)
    )
    assert json_problem(prof, "profile") is None


def test_non_finite_estimator_params_are_recorded_as_text():
    assert _param_value(float("nan")) == "nan" and _param_value(float("-inf")) == "-inf"
    assert _param_value(0.5) == 0.5 and _param_value([1, 2]) == "[1, 2]" and _param_value(None) is None
