"""Real energy datasets for demos and tests, shipped inside the package (about 1.6 MB, no download).

>>> from maestrale.datasets import nrel_system50, pv_features, NREL_SYSTEM50_ESTIMATED_CAPACITY_KW
>>> df = nrel_system50("1h")                    # measured PV power (kW) + weather, UTC index
>>> X, y = pv_features(df), df["power_kw"]      # features never include the target
>>> nmae = lambda pred: (pred - y).abs().mean() / NREL_SYSTEM50_ESTIMATED_CAPACITY_KW

- :func:`nrel_system50`: NREL PVDAQ system 50 (Golden, Colorado) AC power, 2011-04-15 → 2013-12-31,
  with NSRDB PSM3 weather (credit: NREL; files as packaged by pvanalytics, MIT licence).
- :func:`pvgis_italy_tmy`: PVGIS typical meteorological year for 45 N, 8 E, northern Italy
  (PVGIS © European Union, 2001-2024).
- :func:`pv_features`: deterministic calendar and weather features for a PV power model.

Importing this module is cheap: pandas is imported and files are read only when a loader is called.
Licences and credits of the data: ``maestrale/datasets/data/README.md``.
"""

from maestrale.datasets.features import CLEARSKY_INDEX_MAX, CLEARSKY_MIN_GHI, pv_features
from maestrale.datasets.nrel import (
    NREL_SYSTEM50_AZIMUTH_DEG,
    NREL_SYSTEM50_ESTIMATED_CAPACITY_KW,
    NREL_SYSTEM50_LATITUDE,
    NREL_SYSTEM50_LONGITUDE,
    NREL_SYSTEM50_TILT_DEG,
    nrel_system50,
)
from maestrale.datasets.pvgis import PVGIS_CREDIT, pvgis_italy_tmy

__all__ = [
    "CLEARSKY_INDEX_MAX",
    "CLEARSKY_MIN_GHI",
    "NREL_SYSTEM50_AZIMUTH_DEG",
    "NREL_SYSTEM50_ESTIMATED_CAPACITY_KW",
    "NREL_SYSTEM50_LATITUDE",
    "NREL_SYSTEM50_LONGITUDE",
    "NREL_SYSTEM50_TILT_DEG",
    "PVGIS_CREDIT",
    "nrel_system50",
    "pv_features",
    "pvgis_italy_tmy",
]
