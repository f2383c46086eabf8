"""Deterministic feature engineering for PV power models, from weather columns and the time index only."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Below this clear-sky GHI (W/m²) the clear-sky index is set to 0: at night and in the first and last
#: minutes of daylight the ratio ghi / ghi_clear divides by ~0 and is noise.
CLEARSKY_MIN_GHI: float = 10.0
#: Upper clip of the clear-sky index: cloud enhancement can push GHI above clear sky, but not by 2x.
CLEARSKY_INDEX_MAX: float = 2.0

_DAY_HOURS = 24.0
_YEAR_DAYS = 365.25


def pv_features(df: pd.DataFrame) -> pd.DataFrame:
    """Feature matrix for a PV power model, built only from ``df``'s weather columns and time index.

    >>> from maestrale.datasets import nrel_system50, pv_features
    >>> df = nrel_system50("1h")
    >>> X, y = pv_features(df), df["power_kw"]
    >>> list(X.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['hour_sin', 'hour_cos', 'doy_sin', 'doy_cos', 'ghi', 'ghi_clear', 'clearsky_index', 'temp_air']

    Output columns (float64, same index as ``df``, in this order):

    - ``hour_sin``, ``hour_cos``: time of day (hours + minutes) on the unit circle, so 23:00 and 00:00
      are neighbours. Computed in **UTC** for a tz-aware index, so a DST zone cannot make the feature jump
      twice a year; for a single site the UTC offset is a constant phase the model absorbs. A naive index
      is used as it is.
    - ``doy_sin``, ``doy_cos``: day of year on the unit circle (period 365.25 days), the season.
    - ``ghi``: copied from the input, W/m².
    - ``ghi_clear`` and ``clearsky_index``: only when the input has ``ghi_clear``. The index is
      ``ghi / ghi_clear`` clipped to [0, 2] where ``ghi_clear >= 10`` W/m², and 0 otherwise (night,
      twilight), so it never divides by ~0.
    - ``temp_air``: copied from the input, °C.

    Pure function: ``df`` is not modified, and every other column (such as the target ``power_kw``) is
    ignored, so the target cannot leak into the features. NaN in the used inputs stay NaN in the output.

    Args:
        df: a frame with a ``DatetimeIndex`` and at least the columns ``ghi`` and ``temp_air``
            (optionally ``ghi_clear``), e.g. from :func:`~maestrale.datasets.nrel_system50` or
            :func:`~maestrale.datasets.pvgis_italy_tmy`.

    Raises:
        TypeError: if ``df`` has no ``DatetimeIndex``.
        KeyError: if ``ghi`` or ``temp_air`` is missing; the message lists the columns found.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(df.index, pd.DatetimeIndex):
        raise TypeError(
            f"pv_features needs a DatetimeIndex, got {type(df.index).__name__}: "
            "set the time column as index first, e.g. df.set_index('time')"
        )
    missing = [col for col in ("ghi", "temp_air") if col not in df.columns]
    if missing:
        raise KeyError(
            f"pv_features needs columns {missing} (have {list(df.columns)}); rename your irradiance and "
            "air-temperature columns to 'ghi' (W/m2) and 'temp_air' (degC)"
        )

    times = df.index.tz_convert("UTC") if df.index.tz is not None else df.index
    hour = (times.hour + times.minute / 60.0).to_numpy(dtype="float64")
    doy = (times.day_of_year - 1 + hour / _DAY_HOURS).to_numpy(dtype="float64")
    hour_angle = 2.0 * np.pi * hour / _DAY_HOURS
    doy_angle = 2.0 * np.pi * doy / _YEAR_DAYS

    out = pd.DataFrame(
        {
            "hour_sin": np.sin(hour_angle),
            "hour_cos": np.cos(hour_angle),
            "doy_sin": np.sin(doy_angle),
            "doy_cos": np.cos(doy_angle),
        },
        index=df.index,
    )
    ghi = df["ghi"].astype("float64")
    out["ghi"] = ghi
    if "ghi_clear" in df.columns:
        ghi_clear = df["ghi_clear"].astype("float64")
        out["ghi_clear"] = ghi_clear
        day = ghi_clear >= CLEARSKY_MIN_GHI
        # Divide only where the denominator is safe; elsewhere the index is defined as 0 (no sun).
        ratio = ghi.where(day) / ghi_clear.where(day)
        kt = ratio.clip(lower=0.0, upper=CLEARSKY_INDEX_MAX).where(day, 0.0)
        # Keep a missing ghi visible as NaN rather than turning it into "overcast".
        out["clearsky_index"] = kt.where(ghi.notna() & ghi_clear.notna())
    out["temp_air"] = df["temp_air"].astype("float64")
    return out
