"""A synthetic fleet across Italy: PV plants and wind farms from physics and real weather statistics.

>>> fleet = synthetic_fleet(50, seed=7, fault_share=0.3)          # needs maestrale[fleet] (pvlib)
>>> fleet.table()[["name", "kind", "latitude", "capacity_kw", "fault"]].head(3)  # doctest: +SKIP
>>> frame = fleet.frame("pv-it-001")   # two years, hourly, UTC: ghi, ghi_clear, temp_air, power_kw

Each PV plant has its own coordinates (on land, across the peninsula and the islands), AC capacity,
tilt, azimuth and meter noise. Its clear sky is computed at its coordinates (pvlib's Ineichen model
with pvlib's Linke turbidity climatology); its clouds are the real PVGIS typical year for 45 N, 8 E,
shifted by a random number of days, perturbed and made sunnier further south (see `_weather`). Its
power comes from irradiance on its tilted panels (see `_power`). A few wind farms of Enercon
E-126/4200 turbines (the published power curve) turn on Weibull winds.

The frames cover two years: the first (`train_year`) to train on, the second to replay as
production. A seeded share of the PV plants gets one fault in the replay year: an abrupt capacity
loss, gradual soiling, hours of shading or a meter offset (see `_faults`); `fleet.table()` lists who
got what, and `fleet.fault_active(name)` says which hours it affects (never part of the data).

Everything is deterministic in `seed`, and a plant's frame is built when asked (about 40 ms), so a
fleet of 1,000 plants costs no memory until used.

Credits: PVGIS © European Union, 2001-2024 (reuse authorised provided the source is acknowledged);
Linke turbidity climatology as shipped with pvlib (BSD-3-Clause); Enercon E-126/4200 power curve:
Open Energy Platform wind turbine library, © Reiner Lemoine Institut, ODbL 1.0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from maestrale.datasets.fleet._faults import KINDS, Fault, active, apply_fault, draw_fault

__all__ = ["KINDS", "Fault", "Fleet", "Site", "synthetic_fleet"]

# Rough land boxes of Italy (lat min, lat max, lon min, lon max, weight): plants land on land.
_REGIONS = (
    (44.3, 46.2, 7.4, 12.3, 0.30),  # Po valley and the northern plains
    (42.0, 44.3, 10.5, 13.8, 0.20),  # Tuscany, Umbria, Marche, Lazio
    (40.4, 42.0, 13.0, 16.0, 0.15),  # Campania, Molise, Basilicata
    (40.3, 41.8, 15.5, 18.3, 0.12),  # Puglia
    (37.0, 38.2, 12.6, 15.5, 0.13),  # Sicily
    (39.0, 41.0, 8.4, 9.6, 0.10),  # Sardinia
)


@dataclass(frozen=True)
class Site:
    """One plant or farm of the fleet and its parameters (a faulty PV plant carries its `fault`)."""

    name: str
    kind: str  # "pv" or "wind"
    latitude: float
    longitude: float
    altitude: float
    capacity_kw: float
    tilt: float = 0.0
    azimuth: float = 180.0
    noise: float = 0.01  # meter noise, share of capacity
    turbines: int = 0
    wind_scale: float = 0.0
    shift_days: int = 0
    seed: int = 0
    fault: Fault | None = None


@dataclass(frozen=True)
class Fleet:
    """A synthetic fleet: its sites, and their hourly frames over `years` (built on demand)."""

    sites: tuple[Site, ...]
    train_year: int
    seed: int
    by_name: dict[str, Site] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {s.name: s for s in self.sites})

    @property
    def times(self) -> pd.DatetimeIndex:
        """The two years of hourly UTC stamps every frame covers."""
        return _times(self.train_year)

    @property
    def replay_start(self) -> pd.Timestamp:
        """The first hour of the replay (production) year."""
        return pd.Timestamp(f"{self.train_year + 1}-01-01", tz="UTC")

    def table(self) -> pd.DataFrame:
        """One row per site: kind, coordinates, capacity, orientation, and the fault as a sentence."""
        rows = []
        for s in self.sites:
            rows.append({
                "name": s.name, "kind": s.kind, "latitude": s.latitude, "longitude": s.longitude,
                "altitude": s.altitude, "capacity_kw": s.capacity_kw, "tilt": s.tilt, "azimuth": s.azimuth,
                "turbines": s.turbines, "fault_kind": s.fault.kind if s.fault else None,
                "fault_start": s.fault.start if s.fault else None,
                "fault": s.fault.describe() if s.fault else "",
            })  # fmt: skip
        return pd.DataFrame(rows)

    def frame(self, name: str) -> pd.DataFrame:
        """The site's hourly frame over both years (UTC index `time`); measured power includes its fault."""
        site = self.by_name.get(name)
        if site is None:
            raise KeyError(f"no site {name!r} in this fleet; names look like {self.sites[0].name!r}")
        return _pv_frame(site, self.train_year) if site.kind == "pv" else _wind_frame(site, self.train_year)

    def fault_active(self, name: str) -> pd.Series:
        """True for the hours the site's fault affects its measured power (all False when healthy)."""
        return pd.Series(active(self.times, self.by_name[name].fault), index=self.times, name="fault")


def synthetic_fleet(
    n_plants: int,
    *,
    n_wind: int | None = None,
    seed: int = 0,
    fault_share: float = 0.2,
    fault_kinds: tuple[str, ...] = KINDS,
    train_year: int = 2021,
    replay_days: int | None = None,
) -> Fleet:
    """`n_plants` PV plants and `n_wind` wind farms (default: one per 25 plants, at least one).

    `fault_share` of the PV plants get one fault each in the replay year, the kinds in turn from
    `fault_kinds`, at random dates; `seed` fixes everything. `replay_days` (default: the whole year)
    is how much of the replay year will be replayed: faults then start inside that part, after its
    first `LEAD_DAYS` and before its last `TAIL_DAYS` where it is long enough.
    """
    if n_plants < 1:
        raise ValueError(f"a fleet needs at least one PV plant, not {n_plants}")
    if not 0.0 <= fault_share <= 1.0:
        raise ValueError(f"fault_share is a share of the plants, from 0 to 1, not {fault_share}")
    rng = np.random.default_rng(seed)
    n_wind = max(1, n_plants // 25) if n_wind is None else n_wind
    times = _times(train_year)
    replay_start, replay_end = pd.Timestamp(f"{train_year + 1}-01-01", tz="UTC"), times[-1]
    if replay_days is not None:
        if replay_days < 1:
            raise ValueError(
                f"replay_days is a number of days of the replay year, at least 1, not {replay_days}"
            )
        replay_end = min(replay_end, replay_start + pd.Timedelta(days=replay_days))
    faulty = set(rng.choice(n_plants, size=round(fault_share * n_plants), replace=False).tolist())
    kinds = list(fault_kinds)
    sites, k = [], 0
    for i in range(n_plants):
        fault = None
        if i in faulty:
            fault = draw_fault(rng, kinds[k % len(kinds)], replay_start, replay_end)
            k += 1
        sites.append(_pv_site(rng, i, seed, fault))
    sites += [_wind_site(rng, j, seed) for j in range(n_wind)]
    return Fleet(tuple(sites), train_year, seed)


def _location(rng: np.random.Generator) -> tuple[float, float, float]:
    weights = np.array([r[4] for r in _REGIONS])
    lat0, lat1, lon0, lon1, _ = _REGIONS[int(rng.choice(len(_REGIONS), p=weights / weights.sum()))]
    return float(rng.uniform(lat0, lat1)), float(rng.uniform(lon0, lon1)), float(rng.gamma(2.0, 120.0))


def _pv_site(rng: np.random.Generator, i: int, seed: int, fault: Fault | None) -> Site:
    lat, lon, alt = _location(rng)
    return Site(
        name=f"pv-it-{i + 1:03d}", kind="pv", latitude=round(lat, 3), longitude=round(lon, 3),
        altitude=round(alt), capacity_kw=round(float(rng.lognormal(np.log(2000.0), 0.8)), 1),
        tilt=round(float(rng.uniform(10.0, 35.0)), 1), azimuth=round(float(rng.normal(180.0, 15.0)), 1),
        noise=round(float(rng.uniform(0.005, 0.02)), 4), shift_days=int(rng.integers(-20, 21)),
        seed=seed * 100_003 + i, fault=fault,
    )  # fmt: skip


def _wind_site(rng: np.random.Generator, j: int, seed: int) -> Site:
    lat, lon, alt = _location(rng)
    turbines = int(rng.integers(4, 16))
    return Site(
        name=f"wind-it-{j + 1:02d}", kind="wind", latitude=round(lat, 3), longitude=round(lon, 3),
        altitude=round(alt + 300.0), capacity_kw=turbines * 4200.0, turbines=turbines,
        wind_scale=round(float(rng.uniform(6.5, 9.0)), 2), noise=0.02,
        azimuth=round(float(rng.uniform(0.0, 360.0)), 1), seed=seed * 100_003 + 50_000 + j,
    )  # fmt: skip


@functools.lru_cache(maxsize=4)
def _times(train_year: int) -> pd.DatetimeIndex:
    start = pd.Timestamp(f"{train_year}-01-01", tz="UTC")
    return pd.date_range(start, start + pd.DateOffset(years=2), freq="1h", inclusive="left", name="time")


def _pv_frame(site: Site, train_year: int) -> pd.DataFrame:
    from maestrale.datasets.fleet._power import pv_ac_power
    from maestrale.datasets.fleet._weather import plant_clearsky_index, plant_temperature, solar_geometry

    times = _times(train_year)
    rng = np.random.default_rng(site.seed)
    sun = solar_geometry(site.latitude, site.longitude, site.altitude, times)
    # the replay year has its own weather: a second shift, so it is not the training year again
    n = len(times)
    half = n // 2
    k = np.concatenate([
        plant_clearsky_index(rng, half, site.shift_days, site.latitude),
        plant_clearsky_index(rng, n - half, site.shift_days + 183, site.latitude),
    ])  # fmt: skip
    temp = plant_temperature(rng, n, site.shift_days, site.latitude, site.altitude)
    ghi = k * sun.ghi_clear
    power = pv_ac_power(sun, ghi, temp, site.capacity_kw, site.tilt, site.azimuth)
    noisy = np.where(power > 0, power + rng.normal(0.0, site.noise * site.capacity_kw, n), 0.0)
    measured = np.clip(noisy, 0.0, site.capacity_kw)
    if site.fault is not None:
        measured = apply_fault(times, measured, site.fault, site.capacity_kw)
    return pd.DataFrame(
        {"ghi": ghi, "ghi_clear": sun.ghi_clear, "temp_air": temp, "power_kw": measured}, index=times
    )


def _wind_frame(site: Site, train_year: int) -> pd.DataFrame:
    from maestrale.datasets.fleet._power import air_density, wind_direction, wind_farm_power, wind_speed
    from maestrale.datasets.fleet._weather import plant_temperature

    times = _times(train_year)
    rng = np.random.default_rng(site.seed)
    n = len(times)
    ws = wind_speed(rng, n, site.wind_scale)
    temp = plant_temperature(rng, n, 0, site.latitude, site.altitude)
    rho = air_density(temp, site.altitude)
    power = wind_farm_power(ws, rho, site.turbines)
    measured = np.clip(power + rng.normal(0.0, site.noise * site.capacity_kw, n) * (power > 0), 0.0, None)
    return pd.DataFrame(
        {
            "wind_speed": ws, "wind_direction": wind_direction(rng, n, site.azimuth), "air_density": rho,
            "temp_air": temp, "power_kw": measured,
        },
        index=times,
    )  # fmt: skip
