"""Weather of a synthetic plant: clear-sky irradiance at its coordinates, cloudiness from the real PVGIS year.

The cloudiness of the PVGIS typical year for 45 N, 8 E is kept as its hourly clear-sky index
`k = GHI / GHI_clear` (the clear sky computed by pvlib's Ineichen model with its shipped Linke
turbidity climatology). A plant gets that sequence of weather shifted by a number of days (its own
weather, with the same statistics), perturbed day by day and hour by hour, and made sunnier the
further south it is; multiplied by the clear sky at the plant's own coordinates it gives the plant's
GHI. Air temperature is the PVGIS year's, shifted the same way and corrected for latitude and altitude.

>>> k, temp = tmy_clearsky_index()
>>> len(k), float(k.max()) <= K_MAX
(8760, True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: Below this clear-sky GHI (W/m²) the clear-sky index is noise (dawn, dusk, night): it is set to 0.
MIN_CLEAR_GHI = 20.0
#: Upper clip of the clear-sky index (cloud enhancement exceeds clear sky, never by much on hourly means).
K_MAX = 1.25
HOURS = 8760
_TMY_LAT, _TMY_LON, _TMY_ALT = 45.0, 8.0, 250.0


@dataclass(frozen=True)
class SolarGeometry:
    """The sun and the clear sky over one site, hour by hour (arrays aligned with `times`)."""

    times: pd.DatetimeIndex
    apparent_zenith: np.ndarray
    azimuth: np.ndarray
    ghi_clear: np.ndarray


@functools.cache
def tmy_clearsky_index() -> tuple[np.ndarray, np.ndarray]:
    """The PVGIS year's hourly clear-sky index and air temperature (°C), 8760 values each, from 1 January.

    PVGIS © European Union, 2001-2024 (see `maestrale.datasets.pvgis_italy_tmy`).
    """
    import pandas as pd

    from maestrale.datasets.pvgis import pvgis_italy_tmy

    tmy = pvgis_italy_tmy(coerce_year=2021).sort_index()
    assert isinstance(tmy.index, pd.DatetimeIndex)  # pvgis_italy_tmy indexes by time
    sun = solar_geometry(_TMY_LAT, _TMY_LON, _TMY_ALT, tmy.index)
    ghi = tmy["ghi"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(sun.ghi_clear > MIN_CLEAR_GHI, ghi / sun.ghi_clear, 0.0)
    k = np.clip(np.nan_to_num(k), 0.0, K_MAX)
    return k[:HOURS], tmy["temp_air"].to_numpy(dtype="float64")[:HOURS]


def solar_geometry(
    latitude: float, longitude: float, altitude: float, times: pd.DatetimeIndex
) -> SolarGeometry:
    """Solar position and Ineichen clear-sky GHI (pvlib, Linke turbidity from pvlib's climatology)."""
    from pvlib.location import Location

    loc = Location(latitude, longitude, tz="UTC", altitude=altitude)
    # mid-hour sun: an hourly mean is best represented by the position at its centre
    mid = times + np.timedelta64(30, "m")
    position = loc.get_solarposition(mid)
    clear = loc.get_clearsky(mid, model="ineichen", solar_position=position)
    return SolarGeometry(
        times=times,
        apparent_zenith=position["apparent_zenith"].to_numpy(dtype="float64"),
        azimuth=position["azimuth"].to_numpy(dtype="float64"),
        ghi_clear=clear["ghi"].to_numpy(dtype="float64"),
    )


def plant_clearsky_index(
    rng: np.random.Generator, n_hours: int, shift_days: int, latitude: float, daily_sd: float = 0.08
) -> np.ndarray:
    """The plant's clear-sky index for `n_hours` from 1 January: the PVGIS year shifted and perturbed.

    The shift moves whole days, so a cloudy day stays a cloudy day; the perturbation multiplies each
    day by a log-normal factor (spread `daily_sd`) and adds an autocorrelated hourly noise, so two
    plants with the same shift still differ. South of 45 N the sky clears: the cloudy part `1 - k` is
    scaled down by up to 35 % at 37 N, roughly the difference in sunshine hours between Piedmont and
    Sicily.
    """
    base, _ = tmy_clearsky_index()
    reps = int(np.ceil((n_hours + abs(shift_days) * 24) / HOURS)) + 1
    k = np.roll(np.tile(base, reps), -shift_days * 24)[:n_hours]
    days = int(np.ceil(n_hours / 24))
    daily = np.repeat(np.exp(rng.normal(0.0, daily_sd, days)), 24)[:n_hours]
    hourly = _ar1(rng, n_hours, phi=0.7, sd=0.05)
    k = np.where(k > 0, k * daily + hourly, 0.0)
    south = np.clip((45.0 - latitude) / 8.0, 0.0, 1.0) * 0.35
    k = np.where(k > 0, 1.0 - (1.0 - k) * (1.0 - south), 0.0)
    return np.clip(k, 0.0, K_MAX)


def plant_temperature(
    rng: np.random.Generator, n_hours: int, shift_days: int, latitude: float, altitude: float
) -> np.ndarray:
    """Air temperature (°C): the PVGIS year's, shifted like the sky, +0.7 °C per degree south of 45 N,
    -6.5 °C per km above the PVGIS site's 250 m, plus an autocorrelated noise of about 1 °C."""
    _, base = tmy_clearsky_index()
    reps = int(np.ceil((n_hours + abs(shift_days) * 24) / HOURS)) + 1
    temp = np.roll(np.tile(base, reps), -shift_days * 24)[:n_hours]
    offset = 0.7 * (45.0 - latitude) - 6.5 * (altitude - _TMY_ALT) / 1000.0
    return temp + offset + _ar1(rng, n_hours, phi=0.95, sd=0.3)


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """An AR(1) series with stationary standard deviation `sd` (vectorised through a linear filter)."""
    from scipy.signal import lfilter

    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), n)
    return lfilter([1.0], [1.0, -phi], shocks)
