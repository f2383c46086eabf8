"""Regenerate the CSV files of `examples/specs/pv-sites-csv.yaml` from the datasets shipped with Maestrale.

    python examples/specs/data/make_csv.py

- `nrel-50.csv`: REAL data. NREL PVDAQ system 50 measured AC power (kW) with NSRDB PSM3 weather,
  hourly, 2011-04-15 → 2011-09-30 (credit: NREL; files as packaged by pvanalytics, MIT licence).
- `pvgis-it.csv`: REAL weather, SYNTHETIC power. PVGIS typical meteorological year for 45 N, 8 E
  (PVGIS © European Union, 2001-2024), April-September relabelled to 2021. There is no measured
  power at that point: `power_kw` is computed from the irradiance and temperature with a simple
  PVWatts-like formula for a 5 kW horizontal array (cell temperature from NOCT 45 °C, -0.4 %/°C,
  96 % inverter efficiency, clipped at 5 kW) times 5 % seeded random noise. A model fitted on it learns
  that formula back; use it to exercise the pipeline, never to judge a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maestrale.datasets import nrel_system50, pvgis_italy_tmy

HERE = Path(__file__).parent
PVGIS_CAPACITY_KW = 5.0


def main() -> None:
    nrel = nrel_system50("1h").loc["2011-04-15":"2011-09-30", ["ghi", "ghi_clear", "temp_air", "power_kw"]]
    nrel.round({"ghi": 1, "ghi_clear": 1, "temp_air": 1, "power_kw": 4}).to_csv(
        HERE / "nrel-50.csv", date_format="%Y-%m-%dT%H:%MZ"
    )

    tmy = pvgis_italy_tmy(coerce_year=2021).loc["2021-04-01":"2021-09-30", ["ghi", "temp_air", "wind_speed"]]
    cell = tmy["temp_air"] + tmy["ghi"] / 800.0 * (45.0 - 20.0)
    dc = PVGIS_CAPACITY_KW * tmy["ghi"] / 1000.0 * (1.0 - 0.004 * (cell - 25.0))
    noise = np.random.default_rng(50).normal(1.0, 0.05, len(tmy))
    out = tmy.assign(power_kw=(0.96 * dc * noise).clip(0.0, PVGIS_CAPACITY_KW))
    out.round({"ghi": 1, "temp_air": 2, "wind_speed": 2, "power_kw": 4}).to_csv(
        HERE / "pvgis-it.csv", date_format="%Y-%m-%dT%H:%MZ"
    )


if __name__ == "__main__":
    main()
