"""The PV plants this service forecasts, and stand-ins for their two data feeds: weather forecasts and meters.

A real team reads both feeds from its own systems (a numerical weather prediction provider, the plant's
SCADA or the grid operator's meter export). This example has neither, so it builds them from the PVGIS
typical meteorological year shipped with Maestrale (45.000 N, 8.000 E, Piedmont, northern Italy):

- `weather_forecast(plant, day)`: the PVGIS weather of that calendar day with a seeded forecast error
  (a per-day cloudiness error and an hourly one on irradiance, ±1 °C on temperature), as a day-ahead
  forecast would have;
- `meter_readings(plant, start, end)`: SIMULATED AC power (kW). There is no measured power at that
  point, so it is computed from the PVGIS irradiance and temperature with a PVWatts-like model of a
  south-facing array (isotropic-sky plane-of-array irradiance, NOAA solar position, NOCT cell
  temperature, -0.4 %/°C, 96 % inverter efficiency, clipped at the AC capacity) plus 2 % meter noise.

Weather source: PVGIS © European Union, 2001-2024; reuse is authorised provided the source is
acknowledged. A TMY has one year of weather, relabelled here to whichever year is asked for: any day of
any year gets the weather of the same calendar day (29 February gets the 28th's).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from maestrale.datasets import PVGIS_CREDIT, pvgis_italy_tmy

CREDIT = PVGIS_CREDIT


@dataclass(frozen=True)
class Plant:
    """A fixed-tilt PV plant: where it is, how its array faces, how big its inverters are."""

    name: str
    latitude: float
    longitude: float
    capacity_kw: float  # AC (inverter) capacity: the forecast never exceeds it
    dc_kwp: float  # DC array size; above capacity_kw × 1/0.96 the inverters clip
    tilt_deg: float = 30.0
    azimuth_deg: float = 180.0  # 180 = facing south

    @property
    def model_name(self) -> str:
        """The registry name of this plant's forecast model: `pv-{plant}`."""
        return f"pv-{self.name}"


#: The fleet this service forecasts (one model per plant in the registry, `pv-{name}`).
PLANTS: dict[str, Plant] = {
    "piemonte": Plant("piemonte", latitude=45.0, longitude=8.0, capacity_kw=1000.0, dc_kwp=1150.0),
}


def get_plant(name: str) -> Plant:
    """The plant called `name`; KeyError naming the known plants otherwise."""
    try:
        return PLANTS[name]
    except KeyError:
        raise KeyError(f"unknown plant {name!r}; this service knows: {', '.join(sorted(PLANTS))}") from None


@functools.lru_cache(maxsize=1)
def _tmy() -> pd.DataFrame:
    return pvgis_italy_tmy(coerce_year=2023)  # 2023 is not a leap year: 365 days, Feb 28 last


def pvgis_weather(start: date, end: date) -> pd.DataFrame:
    """Hourly PVGIS TMY weather (ghi, dni, dhi W/m², temp_air °C) relabelled to the days start..end (UTC)."""
    tmy = _tmy()
    days = pd.date_range(start, end, freq="D")
    parts = []
    for day in days:
        dom = 28 if (day.month, day.day) == (2, 29) else day.day
        block = tmy.loc[f"2023-{day.month:02d}-{dom:02d}", ["ghi", "dni", "dhi", "temp_air"]].copy()
        block.index = pd.date_range(day, periods=len(block), freq="h", tz="UTC", name="time")
        parts.append(block)
    return pd.concat(parts)


def _seed(*parts: object) -> int:
    """A stable seed from values (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def weather_forecast(plant: Plant, day: date) -> pd.DataFrame:
    """The day-ahead weather forecast for `day` at `plant`: hourly `ghi` (W/m²) and `temp_air` (°C), UTC.

    >>> weather_forecast(PLANTS["piemonte"], date(2023, 10, 2)).shape
    (24, 2)
    """
    actual = pvgis_weather(day, day)
    rng = np.random.default_rng(_seed("weather", plant.name, day.isoformat()))
    cloud_error = np.clip(rng.normal(1.0, 0.12), 0.6, 1.4)  # the day turns out sunnier or duller
    hourly = np.clip(rng.normal(1.0, 0.06, len(actual)), 0.7, 1.3)
    return pd.DataFrame(
        {
            "ghi": (actual["ghi"] * cloud_error * hourly).round(1),
            "temp_air": (actual["temp_air"] + rng.normal(0.0, 1.0, len(actual))).round(2),
        },
        index=actual.index,
    )


def solar_position(
    times: pd.DatetimeIndex, latitude: float, longitude: float
) -> tuple[np.ndarray, np.ndarray]:
    """(zenith, azimuth) in degrees, azimuth clockwise from north.

    NOAA Global Monitoring Laboratory, "General Solar Position Calculations" (fractional-year series for
    the equation of time and the declination); good to about a quarter of a degree, enough here.
    """
    utc = times.tz_convert("UTC")
    hours = (utc.hour + utc.minute / 60.0).to_numpy(dtype="float64")
    gamma = 2.0 * np.pi / 365.0 * (utc.day_of_year.to_numpy() - 1 + (hours - 12.0) / 24.0)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma)
        + 0.00148 * np.sin(3 * gamma)
    )
    true_solar_min = hours * 60.0 + eqtime + 4.0 * longitude
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    lat = np.radians(latitude)
    cos_zen = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    zenith = np.degrees(np.arccos(np.clip(cos_zen, -1.0, 1.0)))
    azimuth = np.degrees(
        np.arctan2(np.sin(hour_angle), np.cos(hour_angle) * np.sin(lat) - np.tan(decl) * np.cos(lat))
    )
    return zenith, (azimuth + 180.0) % 360.0


def simulate_ac_power(plant: Plant, weather: pd.DataFrame) -> pd.Series:
    """AC power (kW) of `plant` under `weather` (ghi, dni, dhi, temp_air), without noise."""
    zenith, azimuth = solar_position(weather.index, plant.latitude, plant.longitude)
    zen, tilt = np.radians(zenith), np.radians(plant.tilt_deg)
    cos_aoi = np.cos(zen) * np.cos(tilt) + np.sin(zen) * np.sin(tilt) * np.cos(
        np.radians(azimuth - plant.azimuth_deg)
    )
    sun_up = zenith < 90.0
    beam = np.where(sun_up, weather["dni"].to_numpy() * np.clip(cos_aoi, 0.0, None), 0.0)
    sky = weather["dhi"].to_numpy() * (1.0 + np.cos(tilt)) / 2.0
    ground = weather["ghi"].to_numpy() * 0.2 * (1.0 - np.cos(tilt)) / 2.0  # albedo 0.2
    poa = beam + sky + ground
    cell = weather["temp_air"].to_numpy() + poa / 800.0 * (45.0 - 20.0)  # NOCT 45 °C
    dc = plant.dc_kwp * poa / 1000.0 * (1.0 - 0.004 * (cell - 25.0))
    ac = np.clip(0.96 * dc, 0.0, plant.capacity_kw)
    return pd.Series(ac, index=weather.index, name="power_kw")


def meter_readings(plant: Plant, start: date, end: date | None = None) -> pd.Series:
    """SIMULATED hourly AC power (kW) of `plant` for the days start..end, as its meter export gives it."""
    end = end or start
    power = simulate_ac_power(plant, pvgis_weather(start, end))
    noise = np.concatenate(
        [
            np.random.default_rng(_seed("meter", plant.name, d.date().isoformat())).normal(1.0, 0.02, 24)
            for d in pd.date_range(start, end, freq="D")
        ]
    )
    return (power * noise).clip(0.0, plant.capacity_kw).round(3)


def history(plant: Plant, start: date, end: date) -> pd.DataFrame:
    """What the team's data lake holds: the day-ahead forecast weather of each day and the meter readings."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    weather = pd.concat([weather_forecast(plant, d) for d in days])
    return weather.assign(power_kw=meter_readings(plant, start, end))
