"""Power of a synthetic plant: PV from irradiance on its tilted panels, wind from the E-126 power curve.

PV: GHI is split into direct and diffuse with the Erbs model, transposed onto the panels (isotropic
sky), and turned into AC power with a temperature coefficient of -0.37 %/°C on the cell temperature
(Faiman model), a DC/AC ratio of 1.15, 96 % inverter efficiency and clipping at the AC rating.

Wind: an Enercon E-126/4200 power curve per turbine, on a wind speed with a Weibull distribution and
hour-to-hour persistence (a Gaussian AR(1) process mapped through the Weibull quantile function),
with 97 % availability. Power curve: Open Energy Platform wind turbine library, © Reiner Lemoine
Institut, ODbL 1.0, as distributed with windpowerlib (MIT).

>>> ws, kw = e126_curve()
>>> float(np.interp(12.0, ws, kw))
4000.0
"""

from __future__ import annotations

import numpy as np

from maestrale.datasets.fleet._weather import SolarGeometry, _ar1

GAMMA_PER_C = -0.0037
DC_AC_RATIO = 1.15
INVERTER_EFFICIENCY = 0.96
#: Enercon E-126/4200 (EP4), (hub-height wind speed m/s, kW) at 1.225 kg/m³; ODbL 1.0 (see above).
E126_4200_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (2.0, 0.0), (3.0, 58.0), (4.0, 185.0), (5.0, 400.0), (6.0, 745.0), (7.0, 1200.0),
    (8.0, 1790.0), (9.0, 2450.0), (10.0, 3120.0), (11.0, 3660.0), (12.0, 4000.0), (13.0, 4150.0),
    (14.0, 4200.0), (25.0, 4200.0),
)  # fmt: skip
E126_RATED_KW = 4200.0
CUT_OUT_MS = 25.0


def pv_ac_power(
    sun: SolarGeometry, ghi: np.ndarray, temp_air: np.ndarray, capacity_kw: float, tilt: float, azimuth: float
) -> np.ndarray:
    """AC power (kW) of a fixed-tilt array rated `capacity_kw` AC, from GHI and air temperature."""
    import pvlib

    zenith = sun.apparent_zenith
    doy = sun.times.day_of_year.to_numpy()
    parts = pvlib.irradiance.erbs(ghi, zenith, doy)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, zenith, sun.azimuth, parts["dni"], ghi, parts["dhi"], model="isotropic"
    )["poa_global"]
    poa = np.nan_to_num(np.asarray(poa, dtype="float64"), nan=0.0)
    poa = np.where(zenith < 90.0, np.maximum(poa, 0.0), 0.0)
    cell = pvlib.temperature.faiman(poa, temp_air, wind_speed=2.0)
    dc = capacity_kw * DC_AC_RATIO * poa / 1000.0 * (1.0 + GAMMA_PER_C * (np.asarray(cell) - 25.0))
    return np.clip(dc * INVERTER_EFFICIENCY, 0.0, capacity_kw)


def e126_curve() -> tuple[np.ndarray, np.ndarray]:
    """(wind speeds m/s, kW) of one E-126/4200, with the cut-out to 0 just above 25 m/s."""
    ws = np.array([p[0] for p in E126_4200_CURVE] + [CUT_OUT_MS + 0.01])
    kw = np.array([p[1] for p in E126_4200_CURVE] + [0.0])
    return ws, kw


def wind_speed(rng: np.random.Generator, n_hours: int, scale: float, shape: float = 2.0) -> np.ndarray:
    """Hourly hub-height wind speed (m/s): Weibull(`shape`, `scale`) marginals, persistent hour to hour."""
    from scipy.special import ndtr

    z = _ar1(rng, n_hours, phi=0.96, sd=1.0)
    u = np.clip(ndtr(z), 1e-9, 1.0 - 1e-9)
    return scale * (-np.log1p(-u)) ** (1.0 / shape)


def wind_direction(rng: np.random.Generator, n_hours: int, prevailing: float) -> np.ndarray:
    """Hourly wind direction (degrees): a prevailing direction with slow, persistent swings."""
    return (prevailing + 60.0 * _ar1(rng, n_hours, phi=0.98, sd=1.0)) % 360.0


def wind_farm_power(ws: np.ndarray, air_density: np.ndarray, turbines: int) -> np.ndarray:
    """Farm power (kW): the curve at the density-corrected speed, times turbines and 97 % availability."""
    curve_ws, curve_kw = e126_curve()
    # IEC 61400-12 density correction of the speed: the curve is for 1.225 kg/m³
    corrected = ws * (air_density / 1.225) ** (1.0 / 3.0)
    return np.interp(corrected, curve_ws, curve_kw, right=0.0) * turbines * 0.97


def air_density(temp_air: np.ndarray, altitude: float) -> np.ndarray:
    """Air density (kg/m³) from temperature and altitude (barometric formula, standard atmosphere)."""
    pressure = 101325.0 * (1.0 - 2.25577e-5 * altitude) ** 5.25588
    return pressure / (287.05 * (temp_air + 273.15))
