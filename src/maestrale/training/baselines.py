"""Reference forecasts a model must beat: persistence and climatology.

>>> import pandas as pd
>>> y = pd.Series([1.0, 2.0, 3.0, 4.0], index=pd.date_range("2011-01-01", periods=4, freq="h"))
>>> persistence(y, y.index[2:], "1h").tolist()
[2.0, 3.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from maestrale.training.validate import time_index


def persistence(target_all: pd.Series, times: pd.DatetimeIndex, lag: str | pd.Timedelta) -> np.ndarray:
    """The target `lag` before each of `times`, looked up by time (gaps give NaN, never a wrong row).

    `target_all` may hold rows before the training window: a value `lag` earlier is always known at
    forecast time, so using it is not a leak.
    """
    return target_all.reindex(times - pd.Timedelta(lag)).to_numpy(dtype="float64")


def _slot(times: pd.DatetimeIndex, by: str) -> np.ndarray:
    if by == "hour_of_day":
        return np.asarray(times.hour, dtype=np.intp)
    if by == "hour_of_week":
        return np.asarray(times.day_of_week * 24 + times.hour, dtype=np.intp)
    raise ValueError(f"unknown climatology grouping {by!r}: use hour_of_day or hour_of_week")


def climatology(y_train: pd.Series, times: pd.DatetimeIndex, by: str = "hour_of_day") -> np.ndarray:
    """Mean training target of the same hour of day (or week) as each of `times`, in the index's zone.

    >>> y = pd.Series([0.0, 2.0, 4.0], index=pd.to_datetime(["2011-01-01 10:00", "2011-01-02 10:00",
    ...                                                        "2011-01-02 11:00"]))
    >>> climatology(y, pd.DatetimeIndex(["2011-01-03 10:00", "2011-01-03 12:00"])).tolist()
    [1.0, nan]
    """
    size = 24 if by == "hour_of_day" else 168
    slots = _slot(time_index(y_train, "the training target"), by)
    values = y_train.to_numpy(dtype="float64")
    ok = np.isfinite(values)
    sums = np.bincount(slots[ok], weights=values[ok], minlength=size)
    counts = np.bincount(slots[ok], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means[_slot(times, by)]
