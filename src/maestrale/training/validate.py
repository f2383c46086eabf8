"""Checks on the data before anything is fitted; every error says what to change.

>>> prepared = prepare(spec, load_data(spec.data))  # doctest: +SKIP
>>> prepared.X.shape, prepared.y.name  # doctest: +SKIP
((3288, 8), 'power_kw')

Order: time index (parsed by `maestrale.timeparse`: naive stamps need the spec's `timezone`, strings
are ISO 8601 unless `time_format` says otherwise; no missing stamps, increasing, no duplicates) →
train window → target and feature columns present → numeric dtypes → NaN share ≤ `max_nan_share` →
rows with a missing target dropped (a model cannot learn from them) → something left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from maestrale.errors import InvalidInput

if TYPE_CHECKING:
    from maestrale.features.step import FeatureStep
    from maestrale.training.sources import LoadedData
    from maestrale.training.spec import TrainingSpec, TrainWindow


class DataError(InvalidInput):
    """The data cannot train the spec's model as it is; the message names the column or rows and the fix."""


def time_index(data: pd.DataFrame | pd.Series, label: str) -> pd.DatetimeIndex:
    """The timestamps `data` is indexed by; `DataError` when it is indexed by anything else.

    >>> time_index(pd.Series([1.0], index=pd.DatetimeIndex(["2024-06-01 10:00"])), "y").hour.tolist()
    [10]
    """
    index = data.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{label} is indexed by {type(index).__name__}, not by time: index it by its timestamps "
            "(`time_column:` in a spec, or df.set_index(pd.to_datetime(df['time'])))"
        )
    return index


@dataclass(frozen=True, slots=True)
class Prepared:
    """Validated model inputs in time order, plus the full target series for persistence look-ups."""

    X: pd.DataFrame
    y: pd.Series
    target_all: pd.Series  # every row of the source (before the window), for values `lag` earlier
    label: str
    # with a feature set: the model's raw inputs (same rows as X, time index) and the fitted step
    raw: pd.DataFrame | None = None
    step: FeatureStep | None = None

    @property
    def times(self) -> pd.DatetimeIndex:
        return time_index(self.X, self.label)


def _columns(frame: pd.DataFrame, limit: int = 20) -> str:
    cols = [str(c) for c in frame.columns]
    return ", ".join(cols[:limit]) + (f", … ({len(cols)} in all)" if len(cols) > limit else "")


def _to_datetime(values: pd.Series | pd.Index, what: str, label: str, spec: TimeSpec) -> pd.DatetimeIndex:
    """Exact times of a column or index, by the one rule of `maestrale.timeparse` (naive needs a zone)."""
    from maestrale.timeparse import TimeParseError, parse_times

    try:
        return parse_times(
            values, timezone=spec.timezone, time_format=spec.time_format, what=f"{what} of {label}",
            zone_fix=(
                "add `timezone: Europe/Rome` to the spec (the zone the timestamps were written in) or write "
                "them with an offset (2024-06-01T12:00:00+02:00)"
            ),
            format_fix=(
                'declare their format in the spec, e.g. `time_format: "%d/%m/%Y %H:%M"` (strftime codes), '
                "or point time_column at the right column"
            ),
        )  # fmt: skip
    except TimeParseError as exc:
        raise DataError(exc.message) from None


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """How a source's times are written: the zone of naive ones, and the strftime format of strings."""

    timezone: str | None = None
    time_format: str | None = None


def set_time_index(
    frame: pd.DataFrame, time_column: str | None, label: str, times: TimeSpec | None = None
) -> pd.DataFrame:
    """The frame indexed by its timestamps; checked for missing, decreasing and duplicated stamps.

    Naive timestamps are refused unless `times.timezone` names their zone (then localized in it, the
    repeated DST hour resolved by order); strings are ISO 8601 unless `times.time_format` says otherwise.
    """
    times = times or TimeSpec()
    if time_column is not None and time_column != "index" and time_column in frame.columns:
        index = _to_datetime(frame[time_column], f"column {time_column!r}", label, times)
        out = frame.drop(columns=[time_column])
        out.index = index.rename(time_column)
    elif time_column in (None, "index") or time_column == frame.index.name:
        if time_column is None and not isinstance(frame.index, pd.DatetimeIndex):
            likely = [c for c in frame.columns if any(w in str(c).lower() for w in ("time", "date", "stamp"))]
            hint = f"; likely: {', '.join(map(str, likely))}" if likely else ""
            raise DataError(
                f"{label} has no time index: set `time_column:` to the column of timestamps "
                f"(columns present: {_columns(frame)}){hint}"
            )
        out = frame.copy(deep=False)
        out.index = _to_datetime(frame.index, "the time index", label, times).rename(frame.index.name)
    else:
        raise DataError(
            f"time column {time_column!r} is missing from {label}; columns present: {_columns(frame)}"
        )
    check_time_index(time_index(out, label), label)
    return out


def check_time_index(index: pd.DatetimeIndex, label: str) -> None:
    """Raise `DataError` for missing, decreasing or duplicated timestamps (the splits need time order)."""
    if (missing := int(np.count_nonzero(index.isna()))) > 0:
        raise DataError(f"{missing} rows of {label} have no timestamp: drop them or fill the time column")
    stamps = index.asi8
    steps = np.diff(stamps)
    if (back := np.flatnonzero(steps < 0)).size:
        i = int(back[0])
        raise DataError(
            f"the time index of {label} is not increasing: row {i + 1} ({index[i + 1]}) comes after row {i} "
            f"({index[i]}); sort the data by time (for SQL: ORDER BY the time column)"
        )
    if (dups := np.flatnonzero(steps == 0)).size:
        raise DataError(
            f"the time index of {label} has {dups.size} duplicated timestamps "
            f"(first: {index[int(dups[0])]}): if they are local times of the hour repeated when daylight "
            "saving time ends, they are two different hours: write the times without an offset in the "
            "order they were logged and declare `timezone:` (e.g. Europe/Rome), which tells them apart; "
            "if they are true repeats of one reading, drop them (df[~df.index.duplicated()])"
        )


def moment(value: date | datetime, tz: str | tzinfo | None, *, end: bool = False) -> pd.Timestamp:
    """A spec date/time as a bound on an index in zone `tz`; an `end` date covers its whole day.

    >>> moment(date(2011, 8, 31), "UTC", end=True)
    Timestamp('2011-09-01 00:00:00+0000', tz='UTC')
    """
    if end and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day) + timedelta(days=1)
    ts = pd.Timestamp(value)
    if tz is not None:
        return ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def apply_window(frame: pd.DataFrame, window: TrainWindow | None, label: str) -> pd.DataFrame:
    """Rows with `start <= time < end` (a date `end` includes that day)."""
    if window is None or (window.start is None and window.end is None):
        return frame
    index = time_index(frame, label)
    lo = 0 if window.start is None else int(index.searchsorted(moment(window.start, index.tz)))
    hi = len(index) if window.end is None else int(index.searchsorted(moment(window.end, index.tz, end=True)))
    if hi <= lo:
        span = f"{index[0]} → {index[-1]}" if len(index) else "no rows"
        raise DataError(
            f"train_window {window.start} → {window.end} holds no rows of {label} (the data covers {span}): "
            "move the window onto the data"
        )
    return frame.iloc[lo:hi]


def require_columns(frame: pd.DataFrame, columns: list[str], label: str, role: str) -> None:
    """Raise `DataError` naming the missing columns and the ones present."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        what = f"column {missing[0]!r} is" if len(missing) == 1 else f"columns {missing} are"
        raise DataError(f"{what} missing from {label} ({role}); columns present: {_columns(frame)}")


def check_numeric(frame: pd.DataFrame, columns: list[str], label: str, allow_category: bool) -> None:
    """Raise `DataError` for a column a regressor cannot take, with an offending value."""
    for col in columns:
        dtype = frame[col].dtype
        if pd.api.types.is_numeric_dtype(dtype) or (
            allow_category and isinstance(dtype, pd.CategoricalDtype)
        ):
            continue
        values = frame[col]
        bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
        example = f" (e.g. {bad.iloc[0]!r} at {bad.index[0]})" if len(bad) else ""
        raise DataError(
            f"column {col!r} of {label} has dtype {dtype}, not numbers{example}: make it numeric "
            "(in a CSV, leave missing values empty or write NaN; for text categories use dtype category)"
        )


def check_nan_share(frame: pd.DataFrame, columns: list[str], limit: float, label: str, role: str) -> None:
    """Raise `DataError` when a column is NaN in more than `limit` of the window's rows."""
    if not len(frame):
        return
    shares = frame[columns].isna().mean()
    worst = shares[shares > limit]
    if len(worst):
        col, share = str(worst.idxmax()), float(worst.max())
        raise DataError(
            f"{role} {col!r} is NaN in {share:.0%} of the {len(frame):,} rows of {label} in the train window "
            f"(max_nan_share is {limit:g}): fill or drop the gaps, pick a window with fewer gaps, "
            "or raise max_nan_share"
        )


def prepare(spec: TrainingSpec, loaded: LoadedData) -> Prepared:
    """Index, window, check and select: the model's X and y, rows with a missing target dropped."""
    from maestrale.training.features import build_features

    label = loaded.label
    times = TimeSpec(spec.timezone, spec.time_format)
    frame = set_time_index(loaded.frame, spec.time_column, label, times)
    require_columns(frame, [spec.target], label, "the target")
    target_all = frame[spec.target]
    windowed = apply_window(frame, spec.train_window, label)
    check_numeric(windowed, [spec.target], label, allow_category=False)
    built = build_features(windowed, spec, label)
    X, raw = built.X, built.raw
    check_numeric(X, list(X.columns), label, allow_category=True)
    y = windowed[spec.target].astype("float64")
    check_nan_share(windowed, [spec.target], spec.max_nan_share, label, "target")
    check_nan_share(X, list(X.columns), spec.max_nan_share, label, "feature")
    keep = y.notna().to_numpy()
    if not keep.any():
        raise DataError(f"target {spec.target!r} has no values in the train window of {label}")
    if not keep.all():
        X, y = X[keep], y[keep]
        raw = None if raw is None else raw[keep]
    return Prepared(X=X, y=y, target_all=target_all.astype("float64"), label=label, raw=raw, step=built.step)
