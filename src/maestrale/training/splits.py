"""Time-ordered splits: a final holdout and a rolling-origin backtest; never shuffled, never leaking.

>>> import pandas as pd
>>> times = pd.date_range("2011-01-01", periods=10, freq="D")
>>> s = holdout_split(times, test_fraction=0.2)
>>> s.train.tolist(), s.test.tolist()
([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
>>> [f.test.tolist() for f in backtest_folds(times[:8], folds=2, test_size=2)]
[[4, 5], [6, 7]]

Every split returns integer positions into the time-sorted rows; every training row is strictly
earlier than every test row of the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from maestrale.training.validate import DataError


@dataclass(frozen=True, slots=True)
class Split:
    """Positions of the training rows and of the test rows that follow them."""

    train: np.ndarray
    test: np.ndarray


def _check_sorted(times: pd.DatetimeIndex) -> None:
    if not times.is_monotonic_increasing:
        raise ValueError("times must be sorted increasingly (validate.set_time_index checks this)")


def holdout_split(
    times: pd.DatetimeIndex, *, test_start: pd.Timestamp | None = None, test_fraction: float | None = None
) -> Split:
    """Train on rows before `test_start` (or the first 1 - `test_fraction`), test on the rest."""
    _check_sorted(times)
    n = len(times)
    if test_start is not None:
        cut = int(times.searchsorted(test_start, side="left"))
        where = f"test_start {test_start}"
    elif test_fraction is not None:
        cut = n - max(1, round(n * test_fraction))
        where = f"test_fraction {test_fraction:g} of {n} rows"
    else:
        raise ValueError("give test_start or test_fraction")
    if cut <= 0:
        raise DataError(
            f"the holdout leaves no training rows: {where} is at or before the first row "
            f"({times[0] if n else '-'}); move split.holdout.test_start later or train_window.start earlier"
        )
    if cut >= n:
        raise DataError(
            f"the holdout test window is empty: {where} is after the last row ({times[-1] if n else '-'}); "
            "move split.holdout.test_start earlier or train_window.end later"
        )
    positions = np.arange(n)
    return Split(train=positions[:cut], test=positions[cut:])


def backtest_folds(times: pd.DatetimeIndex, folds: int, test_size: int | str | pd.Timedelta) -> list[Split]:
    """Rolling-origin folds over `times`: the last `folds` windows of `test_size` (rows or a duration),
    each fold trained on everything before its window (expanding).

    Run it on the rows before the holdout, so the holdout stays a period no evaluation has touched.
    """
    _check_sorted(times)
    n = len(times)
    if isinstance(test_size, int):
        edges = [n - (folds - j) * test_size for j in range(folds + 1)]
    else:
        # window j holds the times in (last - (folds - j) * size, last - (folds - j - 1) * size]
        size = pd.Timedelta(test_size)
        last = times[-1] if n else pd.Timestamp(0)
        edges = [int(times.searchsorted(last - (folds - j) * size, side="right")) for j in range(folds)] + [n]
    out = []
    for j in range(folds):
        lo, hi = edges[j], edges[j + 1]
        if lo <= 0:
            raise DataError(
                f"backtest fold {j + 1} of {folds} has no training rows: {folds} folds of {test_size} need "
                f"more data before the holdout than the {n} rows from {times[0] if n else '-'}; lower "
                "split.backtest.folds or test_size, or start train_window earlier"
            )
        if hi <= lo:
            raise DataError(
                f"backtest fold {j + 1} of {folds} has an empty test window (a gap in the data?): choose a "
                "larger split.backtest.test_size"
            )
        out.append(Split(train=np.arange(lo), test=np.arange(lo, hi)))
    return out
