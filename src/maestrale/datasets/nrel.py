"""NREL PVDAQ system 50: measured AC power with matching NSRDB PSM3 weather, 2011-04-15 → 2013-12-31.

Data credit: National Renewable Energy Laboratory (NREL), PVDAQ system 50 via the DOE Open Energy Data
Initiative (https://data.openei.org/submissions/4568); weather from the NREL NSRDB PSM3. The two files are
redistributed as packaged by the ``pvanalytics`` project (v0.2.2, MIT licence, © 2020, 2022 Alliance for
Sustainable Energy, LLC and National Technology and Engineering Solutions of Sandia, LLC); see
``maestrale/datasets/data/README.md`` and ``LICENSE-pvanalytics.txt``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from maestrale.datasets._files import NREL_SYSTEM50_POWER_FILE, NREL_SYSTEM50_WEATHER_FILE, data_file

if TYPE_CHECKING:
    import pandas as pd

#: Site of PVDAQ system 50 (the fixed-tilt NREL "SERF East" array on the NREL campus in Golden, Colorado),
#: as given in pvanalytics' "PV Fleets QA Process: Power" example, which also gives its ground-truth
#: orientation below.
NREL_SYSTEM50_LATITUDE: float = 39.7406
NREL_SYSTEM50_LONGITUDE: float = -105.1775
NREL_SYSTEM50_TILT_DEG: float = 45.0
NREL_SYSTEM50_AZIMUTH_DEG: float = 158.0  # degrees clockwise from north: 22° east of south

#: Estimated AC capacity of the measured channel, in kW. The shipped files carry no nameplate, so this is
#: an estimate from the data: the largest 15-min AC power in 2011-2013 is 3.368 kW (the 99.9th percentile
#: is 3.08 kW), rounded up to 0.1 kW. Use it to normalise errors (nMAE = MAE / capacity); do not read it
#: as the DC nameplate, which is likely somewhat larger.
NREL_SYSTEM50_ESTIMATED_CAPACITY_KW: float = 3.4

#: The logger wrote local clock time of this zone (MST in winter, MDT in summer) although the file labels
#: every stamp as fixed UTC-07:00: the daily production window jumps by exactly one hour on the US DST
#: change dates (e.g. 2012-03-11 and 2012-11-04), and the spring-forward hours are empty in the file.
_LOGGER_TZ = "America/Denver"

_POWER_STEP_MINUTES = 15
_WEATHER_COLUMNS = ["ghi", "ghi_clear", "dni_clear", "dhi_clear", "temp_air"]


def _freq_step(freq: str) -> pd.Timedelta:
    """Validate ``freq`` and return it as a Timedelta (a whole multiple of 15 min dividing one day)."""
    import pandas as pd

    fix = (
        "pass a fixed pandas frequency that is a whole multiple of 15 minutes and divides one day, "
        "e.g. '15min', '30min', '1h', '3h' or '1D'"
    )
    try:
        step = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"unknown freq {freq!r}: {fix}") from exc
    base = pd.Timedelta(minutes=_POWER_STEP_MINUTES)
    day = pd.Timedelta(days=1)
    if step <= pd.Timedelta(0) or step % base or day % step:
        raise ValueError(f"unsupported freq {freq!r} for data measured every 15 minutes: {fix}")
    return step


@functools.lru_cache(maxsize=1)
def _power_15min() -> pd.Series:
    """Measured AC power in kW on a regular 15-min UTC grid (NaN where the logger has no value).

    Cached: callers must not modify the returned Series in place.
    """
    import numpy as np
    import pandas as pd

    with data_file(NREL_SYSTEM50_POWER_FILE).open("rb") as fh:
        raw = pd.read_parquet(fh)
    # The stamps say UTC-07:00 but are local clock time (see _LOGGER_TZ): drop the wrong offset and
    # re-localise. Spring-forward stamps do not exist locally (their rows are empty in the file) and become
    # NaT; at fall-back the file holds one row per clock label, which we take as the first (MDT) pass.
    # Both cases fall at night, when the array produces nothing.
    local = (
        raw["measured_on"]
        .dt.tz_localize(None)
        .dt.tz_localize(_LOGGER_TZ, ambiguous=np.ones(len(raw), dtype=bool), nonexistent="NaT")
    )
    keep = local.notna().to_numpy()
    index = pd.DatetimeIndex(local[keep]).tz_convert("UTC").as_unit("ns")
    # PVDAQ reports power in W (the channel peaks at 3.37e3, a few-kW rooftop array); convert to kW.
    power = pd.Series(
        raw["ac_power_2"].to_numpy(dtype="float64")[keep] / 1000.0, index=index, name="power_kw"
    )
    # Regular grid: the fall-back hour that the file could not hold shows up as NaN, like other gaps.
    grid = pd.date_range(index[0], index[-1], freq=f"{_POWER_STEP_MINUTES}min", name="time")
    return power.reindex(grid)


@functools.lru_cache(maxsize=1)
def _weather_30min() -> pd.DataFrame:
    """PSM3 weather, 30-min instantaneous values, UTC index. Cached: do not modify in place."""
    import pandas as pd

    with data_file(NREL_SYSTEM50_WEATHER_FILE).open("rb") as fh:
        raw = pd.read_parquet(fh)
    # Unlike the power, these stamps are true MST (UTC-07:00): clear-sky GHI peaks at solar noon all
    # year round, with no DST jump.
    index = pd.DatetimeIndex(raw["index"]).tz_convert("UTC").as_unit("ns").rename("time")
    return pd.DataFrame(
        raw[_WEATHER_COLUMNS].to_numpy(dtype="float64"), index=index, columns=_WEATHER_COLUMNS
    )


def nrel_system50(freq: str = "1h") -> pd.DataFrame:
    """Measured AC power of NREL PVDAQ system 50 with matching PSM3 weather, resampled to ``freq``.

    >>> from maestrale.datasets import nrel_system50
    >>> df = nrel_system50("1h")
    >>> list(df.columns)
    ['power_kw', 'ghi', 'ghi_clear', 'dni_clear', 'dhi_clear', 'temp_air']

    Index: a regular, tz-aware **UTC** ``DatetimeIndex`` named ``time``, from 2011-04-15 06:00 UTC
    (midnight local) to 2014-01-01 06:xx UTC (2013-12-31 23:xx MST). Each row is labelled by the start of
    its ``freq`` bin; bins are aligned on midnight UTC (so ``"1D"`` bins run 17:00 → 17:00 MST: for local
    days, resample ``nrel_system50("15min")`` yourself after ``tz_convert("America/Denver")``).

    Columns:

    - ``power_kw``: measured AC power (PVDAQ channel ``ac_power_2``, reported in W, converted to kW), the
      mean of the 15-min samples in the bin; NaN where fewer than half of them exist (logger gaps, about
      3 % of the samples, e.g. late December 2013). Never negative. Capacity: see
      :data:`NREL_SYSTEM50_ESTIMATED_CAPACITY_KW`.
    - ``ghi``, ``ghi_clear``, ``dni_clear``, ``dhi_clear``: NSRDB PSM3 global horizontal irradiance and
      clear-sky global / direct normal / diffuse horizontal irradiance, W/m².
    - ``temp_air``: PSM3 air temperature, °C. **Floored at 0 °C in the shipped file**: every sub-zero
      value reads 0.0 (about a quarter of the samples, mostly October-May nights), so it understates winter
      cold; it is still informative above freezing.

    The weather is satellite-derived (not measured on site) and comes every 30 min as instantaneous
    values; it is linearly interpolated in time onto the 15-min power grid and then averaged over each
    bin exactly like the power, so both describe the same interval. It has no NaN.

    The source file labels its stamps UTC-07:00 but the logger kept local clock time (MDT in summer): this
    loader corrects that shift, so summer data sit one hour earlier in UTC than the raw labels say.
    Whether the 15-min stamps mark the start, end or middle of an averaging interval is not documented
    by PVDAQ; they are taken as they are.

    Args:
        freq: a fixed pandas frequency, a whole multiple of 15 minutes dividing one day: ``"15min"``,
            ``"30min"``, ``"1h"`` (default), ``"3h"``, ``"1D"``...

    Raises:
        ValueError: for an unknown or unsupported ``freq``; the message names valid values.

    Data credit: NREL (PVDAQ, NSRDB), files as packaged by pvanalytics (MIT licence), see the module
    docstring.
    """
    import pandas as pd

    step = _freq_step(freq)
    power = _power_15min()
    weather = _weather_30min()
    # Put the weather on the power's 15-min grid. "inside" keeps interpolation between real samples; the
    # power grid runs 15 min past the last weather stamp (23:45 vs 23:30 MST on 2013-12-31), a night step
    # that the one-step forward fill covers.
    grid = power.index
    weather15 = (
        weather.reindex(weather.index.union(grid))
        .interpolate(method="time", limit_area="inside")
        .reindex(grid)
        .ffill(limit=1)
    )
    frame = pd.concat([power, weather15], axis=1)
    frame.index.name = "time"

    n_per_bin = int(step / pd.Timedelta(minutes=_POWER_STEP_MINUTES))
    if n_per_bin == 1:
        out = frame.copy()
    else:
        bins = frame.resample(step, label="left", closed="left", origin="start_day")
        out = bins.mean()
        # A bin mean over a few surviving samples is not the bin's mean power: demand half of them.
        present = bins["power_kw"].count()
        out.loc[present < n_per_bin / 2, "power_kw"] = float("nan")
    out.attrs = {
        "source": "NREL PVDAQ system 50 + NSRDB PSM3, via pvanalytics 0.2.2 (MIT)",
        "units": {
            "power_kw": "kW",
            "ghi": "W/m2",
            "ghi_clear": "W/m2",
            "dni_clear": "W/m2",
            "dhi_clear": "W/m2",
            "temp_air": "degC",
        },
        "capacity_kw_estimated": NREL_SYSTEM50_ESTIMATED_CAPACITY_KW,
        "latitude": NREL_SYSTEM50_LATITUDE,
        "longitude": NREL_SYSTEM50_LONGITUDE,
    }
    return out
