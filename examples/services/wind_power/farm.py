"""The wind farms, and SYNTHETIC stand-ins for their two data feeds: weather forecasts and SCADA power.

A real team reads a numerical weather prediction (NWP) feed and the farm's SCADA export. This example
has neither, so it simulates a plausible farm, seeded and deterministic, for any hour of any year:

- hub-height wind speed with a Weibull distribution (shape `weibull_k`, scale `weibull_c`) and a
  realistic persistence from hours to days: a stationary Gaussian process (a sum of random-phase
  cosines with periods from 3 hours to 10 days, fixed by a seed) mapped through the normal CDF and
  the Weibull quantile function;
- direction around a prevailing one, air temperature with a season and a day, pressure, air density;
- the NWP forecast of each: the truth plus a forecast error that itself persists for hours (0.6 m/s
  on the wind speed: less than a real day-ahead forecast's 1.5-2 m/s, so that the farm's own losses
  are not drowned in it);
- farm power (MW): the turbine's published curve (`turbine.py`) at the density-corrected wind speed
  (IEC 61400-12-1: v·(ρ/1.225)^⅓), less wake losses that peak when the wind blows along the turbine
  row, times the day's availability (turbines down, drawn per day), plus 0.5 % meter noise.

Because the curve is the truth's backbone, the physical baseline gets the shape right and misses the
farm's own losses; the corrected model learns those. None of it is measured data.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy.special import ndtr
from turbine import RATED_KW, turbine_power_kw

EPOCH = pd.Timestamp("2000-01-01", tz="UTC")
R_DRY_AIR = 287.05  # J/(kg·K)


@dataclass(frozen=True)
class Farm:
    """A wind farm: its turbines, its wind climate at hub height and the layout behind its wake losses."""

    name: str
    turbines: int
    elevation_m: float
    weibull_k: float
    weibull_c: float  # m/s at hub height
    prevailing_deg: float
    row_axis_deg: float  # the line the turbines stand on: wakes are worst when the wind blows along it
    availability: float = 0.97

    @property
    def capacity_mw(self) -> float:
        """Installed capacity (MW)."""
        return self.turbines * RATED_KW / 1000.0

    @property
    def model_name(self) -> str:
        """The registry name of this farm's model: `wind-{farm}`."""
        return f"wind-{self.name}"


#: The farms this team forecasts (one model per farm in the registry, `wind-{name}`).
FARMS: dict[str, Farm] = {
    "appennino": Farm(
        "appennino",
        turbines=10,
        elevation_m=1000.0,
        weibull_k=2.1,
        weibull_c=8.2,
        prevailing_deg=225.0,
        row_axis_deg=220.0,
    ),
}


def get_farm(name: str) -> Farm:
    """The farm called `name`; KeyError naming the known farms otherwise."""
    try:
        return FARMS[name]
    except KeyError:
        raise KeyError(f"unknown farm {name!r}; known: {', '.join(sorted(FARMS))}") from None


def _seed(*parts: object) -> int:
    """A stable seed from values (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


@functools.lru_cache(maxsize=64)
def _components(key: str, shortest_h: float, longest_h: float, k: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_seed("process", key))
    periods = np.exp(rng.uniform(np.log(shortest_h), np.log(longest_h), k))
    return periods, rng.uniform(0.0, 2.0 * np.pi, k)


def _process(key: str, hours: np.ndarray, shortest_h: float = 24.0, longest_h: float = 1000.0) -> np.ndarray:
    """A stationary, unit-variance, near-Gaussian series defined at any time (hours since 2000-01-01)."""
    periods, phases = _components(key, shortest_h, longest_h)
    waves = np.cos(2.0 * np.pi * hours[:, None] / periods[None, :] + phases[None, :])
    return waves.sum(axis=1) * np.sqrt(2.0 / len(periods))


def _hours(start: date, end: date) -> pd.DatetimeIndex:
    return pd.date_range(
        pd.Timestamp(start, tz="UTC"),
        pd.Timestamp(end, tz="UTC") + pd.Timedelta("23h"),
        freq="h",
        name="time",
    )


def _air_density(temp_c: np.ndarray, pressure_pa: np.ndarray) -> np.ndarray:
    return pressure_pa / (R_DRY_AIR * (temp_c + 273.15))


def simulate(farm: Farm, start: date, end: date | None = None) -> pd.DataFrame:
    """Hourly truth and forecast for the days start..end (UTC).

    Columns: the forecast inputs `wind_speed` (m/s, hub height), `wind_direction` (degrees from north),
    `air_density` (kg/m³), and the measured `power_mw`.
    """
    index = _hours(start, end or start)
    t = ((index - EPOCH) / pd.Timedelta("1h")).to_numpy(dtype="float64")
    key = farm.name
    # the truth at hub height
    u = np.clip(ndtr(_process(f"{key}/speed", t)), 1e-9, 1 - 1e-9)
    speed = farm.weibull_c * (-np.log1p(-u)) ** (1.0 / farm.weibull_k)
    direction = (farm.prevailing_deg + 70.0 * _process(f"{key}/direction", t, 30.0, 480.0)) % 360.0
    doy = index.day_of_year.to_numpy()
    hour = index.hour.to_numpy()
    temp = (  # annual mean: 14.5 °C at sea level less the standard lapse rate
        14.5
        - 0.0065 * farm.elevation_m
        + 9.0 * np.sin(2 * np.pi * (doy - 110) / 365.25)
        + 3.0 * np.sin(2 * np.pi * (hour - 9) / 24.0)
        + 2.0 * _process(f"{key}/temp", t, 12.0, 480.0)
    )
    pressure = 101325.0 * np.exp(-farm.elevation_m / 8400.0) + 700.0 * _process(
        f"{key}/pressure", t, 24.0, 480.0
    )
    density = _air_density(temp, pressure)

    # the NWP forecast of the same hours: the truth plus an error that persists for hours
    speed_fc = np.clip(speed + 0.6 * _process(f"{key}/speed-error", t, 6.0, 72.0), 0.0, None)
    direction_fc = (direction + 15.0 * _process(f"{key}/direction-error", t, 4.0, 48.0)) % 360.0
    temp_fc = temp + 1.0 * _process(f"{key}/temp-error", t, 4.0, 48.0)
    density_fc = _air_density(temp_fc, pressure)

    # the farm's measured power
    per_turbine = turbine_power_kw(speed * (density / 1.225) ** (1.0 / 3.0))
    along_row = np.abs(np.cos(np.radians(direction - farm.row_axis_deg))) ** 8
    wake_loss = (0.04 + 0.12 * along_row) * (1.0 - (per_turbine / RATED_KW) ** 2)  # wakes fade at rated
    days = pd.date_range(start, end or start, freq="D")
    down = np.concatenate(
        [
            np.full(
                24,
                np.random.default_rng(_seed("down", key, d.date())).binomial(
                    farm.turbines, 1 - farm.availability
                ),
            )
            for d in days
        ]
    )
    noise = np.concatenate(
        [np.random.default_rng(_seed("meter", key, d.date())).normal(0.0, 1.0, 24) for d in days]
    )
    power = per_turbine * (1.0 - wake_loss) * (farm.turbines - down) / 1000.0
    power = np.clip(power + 0.005 * farm.capacity_mw * noise, 0.0, farm.capacity_mw)
    return pd.DataFrame(
        {
            "wind_speed": speed_fc.round(2),
            "wind_direction": direction_fc.round(1),
            "air_density": density_fc.round(4),
            "power_mw": power.round(4),
        },
        index=index,
    )


def nwp_forecast(farm: Farm, day: date) -> pd.DataFrame:
    """The day-ahead weather forecast of `day` at `farm` (hub height): the model's inputs, hourly, UTC."""
    return simulate(farm, day)[["wind_speed", "wind_direction", "air_density"]]


def scada_power(farm: Farm, start: date, end: date | None = None) -> pd.Series:
    """The farm's measured hourly power (MW) for the days start..end, as the SCADA export would give it."""
    return simulate(farm, start, end)["power_mw"]
