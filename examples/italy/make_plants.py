"""Three Italian PV plants as their SCADA would export them: one CSV per plant, local time, dd/mm/YYYY.

    python examples/italy/make_plants.py data/        # data/foggia.csv, data/torino.csv, data/catania.csv

Each file holds two years of hourly rows (2023 to train on, 2024 to replay as production) with the
columns a plant's data export usually has: `time` (Europe/Rome wall-clock time, written
`13/01/2024 10:00`, so the October fall-back hour appears twice and the March spring-forward hour
not at all), measured irradiance `ghi` (W/m²), clear-sky irradiance `ghi_clear` from the weather
provider, air temperature `temp_air` (°C) and AC power `power_kw`.

The plants come from `maestrale.datasets.fleet` (needs `maestrale[fleet]`, i.e. pvlib): clear sky
at each plant's coordinates, clouds from the PVGIS typical year for northern Italy (© European
Union, 2001-2024), tilted-panel AC power. Catania loses a quarter of its capacity from 1 June 2024,
as when an inverter stage fails; the other two stay healthy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from maestrale.datasets.fleet import Fault, Fleet, Site

PLANTS = (
    Site("foggia", "pv", 41.462, 15.545, 76.0, 1000.0, tilt=25.0, azimuth=180.0, noise=0.01, seed=11),
    Site("torino", "pv", 45.070, 7.687, 240.0, 2500.0, tilt=30.0, azimuth=170.0, noise=0.01, seed=12,
         shift_days=9),
    Site("catania", "pv", 37.502, 15.087, 50.0, 4000.0, tilt=20.0, azimuth=185.0, noise=0.01, seed=13,
         shift_days=-7, fault=Fault("abrupt", pd.Timestamp("2024-06-01", tz="UTC"), 0.25)),
)  # fmt: skip


def write_plants(folder: Path) -> list[Path]:
    """Write one CSV per plant into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(PLANTS, train_year=2023, seed=0)
    paths = []
    for site in PLANTS:
        frame = fleet.frame(site.name).round({"ghi": 1, "ghi_clear": 1, "temp_air": 1, "power_kw": 2})
        local = frame.index.tz_convert("Europe/Rome").tz_localize(None)  # what a SCADA export writes
        frame.index = pd.Index(local.strftime("%d/%m/%Y %H:%M"), name="time")
        path = folder / f"{site.name}.csv"
        frame.to_csv(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_plants(Path(sys.argv[1] if len(sys.argv) > 1 else "data")):
        print(f"wrote {written}")
